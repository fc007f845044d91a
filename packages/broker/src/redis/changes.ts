import { Cluster, type Redis } from 'ioredis';
import type {
  ChangeRefusalReason, ChangeResult, DeleteChange, EditChange, EraseRequest, ErasedMessage, MessageChanges, ReactionChange,
} from '../changes.js';
import { ChangeRefusedError, NotAMemberError, RestrictedError } from '../errors.js';
import type { AppendSettings } from './append-script.js';
import { changeScripts } from './change-scripts.js';
import type { EventRecorder } from './event-recorder.js';
import type { KeySpace } from './keys.js';
import { callRedis } from './ready.js';
import type { EventArgs } from './scripts.js';
import type { SlotKeys } from './slot-keys.js';

type ChangeReply = [status: string, idOrReason?: string, count?: number];
type ChangeKeys = [string, string, string, string, string, string, string, string, string, string, string];
type ChangeArgs = [channel: string, ts: number, head: string, lastDelivered: string, room: string, user: string, target: string];

interface ChangeCommands {
  chatEdit(...args: [...ChangeKeys, ...ChangeArgs, body: string, text: string, messageHead: string, ...EventArgs | []]): Promise<ChangeReply>;
  chatDelete(...args: [...ChangeKeys, ...ChangeArgs, body: string, moderator: string, ...EventArgs | []]): Promise<ChangeReply>;
  chatReact(...args: [...ChangeKeys, ...ChangeArgs, reaction: string, op: string]): Promise<ChangeReply>;
  chatErase(...args: [...ChangeKeys, ...ChangeArgs, erased: string, ...EventArgs | []]): Promise<string[]>;
}

export interface RedisMessageChangesOptions {
  command: Redis | Cluster;
  keys: KeySpace;
  settings: AppendSettings;
  events: EventRecorder;
  /** With the archive on: the per-slot sets of rooms to archive. */
  archiveSets: SlotKeys | undefined;
  waitMs: number;
}

const REASONS: ReadonlySet<string> = new Set<ChangeRefusalReason>(['not_found', 'gone', 'not_author', 'too_many']);

/** Changes of messages in Redis: one script per change, beside the room's stream (see change-scripts.ts). */
export class RedisMessageChanges implements MessageChanges {
  readonly #command: (Redis | Cluster) & ChangeCommands;

  constructor(private readonly o: RedisMessageChangesOptions) {
    for (const [name, script] of Object.entries(changeScripts(o.settings))) o.command.defineCommand(name, script);
    this.#command = o.command as (Redis | Cluster) & ChangeCommands;
  }

  edit(change: EditChange): Promise<ChangeResult> {
    return this.#call(change, () => this.#command.chatEdit(
      ...this.#keys(change.room), ...this.#args(change), change.body, change.text, change.messageHead, ...this.#eventArgs(),
    ));
  }

  delete(change: DeleteChange): Promise<ChangeResult> {
    return this.#call(change, () => this.#command.chatDelete(
      ...this.#keys(change.room), ...this.#args(change), change.body, change.moderator ? '1' : '', ...this.#eventArgs(),
    ));
  }

  react(change: ReactionChange): Promise<ChangeResult> {
    return this.#call(change, () => this.#command.chatReact(
      ...this.#keys(change.room), ...this.#args(change), change.reaction, change.add ? 'add' : 'remove',
    ));
  }

  async erase(request: EraseRequest): Promise<ErasedMessage[]> {
    const rooms = request.rooms ?? await this.#roomsWithStreams();
    const erased: ErasedMessage[] = [];
    for (const room of rooms) {
      const change = { room, user: request.actor, target: '0-0', ts: request.ts, head: request.head(room) };
      const flat = await callRedis(this.o.command, this.o.waitMs, () => this.#command.chatErase(
        ...this.#keys(room), ...this.#args(change), request.user, ...this.#eventArgs(),
      ));
      for (let i = 0; i < flat.length; i += 2) erased.push({ room, id: flat[i]!, author: request.user, sentAt: Number(flat[i + 1]) });
    }
    return erased;
  }

  async #call(change: { room: string; user: string; target: string }, send: () => Promise<ChangeReply>): Promise<ChangeResult> {
    const [status, detail, count] = await callRedis(this.o.command, this.o.waitMs, send);
    if (status === 'ok') return count === undefined ? { id: detail!, unchanged: false } : { id: detail!, unchanged: false, count };
    if (status === 'unchanged') return { id: change.target, unchanged: true };
    if (status === 'not_member') throw new NotAMemberError(change.room, change.user);
    if (status === 'banned' || status === 'muted') throw new RestrictedError(status === 'banned' ? 'ban' : 'mute', detail ?? '');
    if (REASONS.has(status)) throw new ChangeRefusedError(status as ChangeRefusalReason);
    throw new Error(`unexpected change script reply ${status}`);
  }

  #keys(room: string): ChangeKeys {
    const { keys, archiveSets, events } = this.o;
    const stream = keys.roomStream(room);
    return [
      stream, keys.roomTrimmed(room), keys.roomLost(room), keys.roomChanges(room), keys.roomChangeMarks(room), keys.roomModeration(room),
      keys.roomConversation(room), keys.roomMembers(room), archiveSets?.of(stream) ?? stream, keys.roomArchived(room), events.streamOf(stream),
    ];
  }

  #args(change: { room: string; user: string; target: string; ts: number; head: string; lastDelivered?: string }): ChangeArgs {
    return [this.o.keys.roomChannel(change.room), change.ts, change.head, change.lastDelivered ?? '', change.room, change.user, change.target];
  }

  /** Left out when nothing is recorded, as for appends. */
  #eventArgs(): EventArgs | [] {
    return this.o.events.on ? this.o.events.args() : [];
  }

  /** Every room with a stream: a SCAN of each primary (an erase in every room is rare and may take a while). */
  async #roomsWithStreams(): Promise<string[]> {
    const pattern = this.o.keys.roomStream('*');
    const [before, after] = pattern.split('*') as [string, string];
    const nodes = this.o.command instanceof Cluster ? this.o.command.nodes('master') : [this.o.command];
    const rooms = new Set<string>();
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, found] = await callRedis(this.o.command, this.o.waitMs, () => node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000));
        cursor = next;
        for (const key of found) rooms.add(key.slice(before.length, key.length - after.length));
      } while (cursor !== '0');
    }
    return [...rooms];
  }
}
