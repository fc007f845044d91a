import type { ArchiveRange, ArchivedMessage } from '@chat/archive';
import type { Broker, StoredMessage } from '@chat/broker';
import { compareIds } from '@chat/protocol';
import type { Logger } from './logger.js';

/** What the gateway reads from the archive (ArchiveStore). */
export interface HistoryArchive {
  before(room: string, before: string | undefined, limit: number, reader?: string): Promise<ArchivedMessage[]>;
  after(room: string, since: string, limit: number): Promise<ArchiveRange>;
}

/** Stored messages after a `since`, and whether they are provably all of them. */
export interface SinceRead {
  messages: StoredMessage[];
  recovered: boolean;
  /** The newest id stored in the room's stream when it was read. */
  newest: string;
}

/**
 * A room's history as clients see it: the Redis stream (its latest messages)
 * continued, past the stream's oldest, by the PostgreSQL archive when there is
 * one. The archive holds every message up to its watermark, so the two meet
 * with no gap and no duplicate: archive rows are taken strictly before the
 * oldest stream message a page holds.
 */
export class RoomHistory {
  constructor(private readonly broker: Broker, private readonly archive: HistoryArchive | undefined, private readonly log: Logger) {}

  /** A `history` page: up to `limit` messages before `before`, oldest first. */
  async page(room: string, before: string | undefined, limit: number, reader?: string): Promise<StoredMessage[]> {
    const recent = await this.broker.history(room, before, limit, reader);
    if (this.archive === undefined || recent.length >= limit) return recent;
    const older = await this.archive.before(room, recent[0]?.id ?? before, limit - recent.length, reader);
    return [...older, ...recent];
  }

  /**
   * Everything stored after `since`, for a rejoin. The stream answers when it
   * can vouch for `since`; when it cannot (trimmed past it, or it never held
   * it) the archive may: its rows after `since`, then the stream's after them.
   * `recovered` is true only when both parts are provably complete and no loss
   * mark lies after `since`; otherwise the stream's own answer stands.
   */
  async since(room: string, since: string, limit: number): Promise<SinceRead> {
    const stream = await this.broker.after(room, since, limit);
    const fromStream = { messages: stream.messages, recovered: stream.gap === undefined, newest: stream.newest };
    if (this.archive === undefined || (stream.gap !== 'trimmed' && stream.gap !== 'unproven')) return fromStream;
    let archived: ArchiveRange;
    try {
      archived = await this.archive.after(room, since, limit);
    } catch (err) {
      this.log.warn({ err, room }, 'archive unreachable for a rejoin; answering from the stream alone');
      return fromStream;
    }
    if (!archived.continuous || archived.more) return fromStream;
    const last = archived.messages.at(-1)?.id ?? since;
    const rest = await this.broker.after(room, last, limit - archived.messages.length);
    if (rest.gap === 'trimmed' || rest.gap === 'unproven' || rest.gap === 'limit') return fromStream; // the archive lags the stream
    return {
      messages: [...archived.messages, ...rest.messages],
      recovered: rest.gap === undefined && compareIds(since, rest.lost) >= 0,
      newest: rest.newest,
    };
  }
}
