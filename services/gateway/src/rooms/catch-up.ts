import type { Broker, RangeGap } from '@chat/broker';
import { compareIds } from '@chat/protocol';
import type { Logger } from '../logger.js';
import type { HeldMessage } from './join-sync.js';
import type { LocalRoom } from './local-room.js';

/** Why a room's members were closed to rejoin with `since`: a gap its stream cannot fill, or a failed read. */
export type ResyncReason = RangeGap | 'failed';

export interface CatchUpDeps {
  broker: Broker;
  log: Logger;
  /** Most messages read back: everything a room stores. */
  replayLimit: number;
  fanOut(room: LocalRoom, id: string, frame: HeldMessage['frame']): void;
  /** The room's continuity broke: every member here may have missed messages. */
  resync(room: LocalRoom, why: ResyncReason): void;
  /** Records that the stream lost `upTo`, which this node delivered (never rejects). */
  markLost(room: LocalRoom, upTo: string): Promise<void>;
}

/**
 * Reads back what a room's live stream missed, after a broker outage or when
 * a message's `prev` is not the last one delivered here, and fans it out
 * before any newer live message. When the stream cannot prove that nothing is
 * missing, the members are resynced instead: they rejoin with `since` and are
 * told the truth in `recovered`. An id this node delivered that the stream no
 * longer holds is a loss (a Redis restart, a failover onto a lagging replica):
 * it is marked in Redis first, so every later rejoin from before it is told.
 */
export class CatchUp {
  #running = 0;

  constructor(private readonly deps: CatchUpDeps) {}

  /** Rooms reading back now: until they are done this node's members may lag. */
  get running(): number {
    return this.#running;
  }

  async run(room: LocalRoom): Promise<void> {
    const from = room.lastId;
    if (from === undefined || room.holders.size === 0) return;
    if (room.catchUp !== null) {
      room.catchUpAgain = true;
      return;
    }
    const held = (room.catchUp = []);
    this.#running++;
    let settle!: () => void;
    room.settled = new Promise((resolve) => (settle = resolve));
    try {
      await this.#readBack(room, from, held);
    } finally {
      room.catchUp = null;
      this.#running--;
      settle();
    }
    if (room.catchUpAgain) {
      room.catchUpAgain = false;
      await this.run(room);
    }
  }

  async #readBack(room: LocalRoom, from: string, held: readonly HeldMessage[]): Promise<void> {
    const { broker, log, replayLimit } = this.deps;
    let range;
    try {
      range = await broker.after(room.name, from, replayLimit);
    } catch (err) {
      log.warn({ err, room: room.name }, 'catch-up failed; resyncing local members');
      return this.#giveUp(room, 'failed', undefined, held);
    }
    const { messages, gap, newest, lost } = range;
    if (gap === 'unproven') {
      log.warn({ room: room.name, delivered: from, newest }, 'the stream lost messages this node delivered; marking the loss');
      await this.deps.markLost(room, from);
      room.knowLoss(from);
      return this.#giveUp(room, 'lost', newest, held);
    }
    // `lost` is checked last: a mark every member here already knows of hides no other gap.
    if (gap !== undefined && !(gap === 'lost' && compareIds(lost, room.knownLoss) <= 0)) {
      room.knowLoss(lost);
      return this.#giveUp(room, gap, newest, held);
    }
    for (const m of messages) this.deps.fanOut(room, m.id, room.frame(m));
    for (const h of held) if (compareIds(h.id, room.lastId!) > 0) this.deps.fanOut(room, h.id, h.frame);
    if (messages.length > 0) log.info({ room: room.name, recovered: messages.length }, 'read back what the live stream missed');
  }

  /**
   * Resyncs the members. Nobody here has what arrived meanwhile, and later
   * joiners read it from the stream, so the watermark moves to the stream's
   * newest (down, after a loss: ids the stream lost will not come again).
   */
  #giveUp(room: LocalRoom, why: ResyncReason, newest: string | undefined, held: readonly HeldMessage[]): void {
    this.deps.resync(room, why);
    if (newest !== undefined) room.lastId = newest;
    for (const h of held) room.advance(h.id);
  }
}
