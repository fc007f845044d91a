import type { Cluster, Redis } from 'ioredis';
import { NotAMemberError, RestrictedError } from '../errors.js';
import type { BrokerLog } from '../log.js';
import type { MemberPage, RoomHeadcount } from '../presence.js';
import type { EventRecorder } from './event-recorder.js';
import { inParallel } from './in-parallel.js';
import type { KeySpace } from './keys.js';
import type { ChatScripts } from './scripts.js';

export interface RoomPresenceOptions {
  command: (Redis | Cluster) & ChatScripts;
  keys: KeySpace;
  incarnation: string;
  /** PUBLISH, or SPUBLISH on Redis Cluster. */
  publish: string;
  ttlMs: number;
  events: EventRecorder;
  log: BrokerLog;
  /** Runs a command as the broker does: waits for a (re)connecting Redis, fails as unavailable. */
  call<T>(operation: () => Promise<T>): Promise<T>;
}

/** Rooms written at once by a resync or a withdrawal: a steady stream, not a burst. */
const CONCURRENCY = 16;
/** Users one withdrawal script takes out of a room, so a big room is withdrawn in steps. */
const WITHDRAW_BATCH = 500;

type RoomKeys = [present: string, conns: string, hold: string, state: string, events: string];
type RoomArgs = [channel: string, publish: string, room: string, stateTtlMs: number];

/**
 * This node's share of room presence in Redis (see presence-scripts.ts): which
 * users it holds in which room with how many connections. Nothing is
 * refreshed per room: the node registry (RedisUserPresence) keeps this
 * incarnation alive, and whoever finds it dead withdraws what it lists here.
 * A write that failed, or that Redis may have lost, is made good by writing
 * the room's holds whole again (a resync), from `#held`.
 */
export class RedisRoomPresence {
  /** room -> user -> connections joined here; what Redis should hold for this incarnation. */
  readonly #held = new Map<string, Map<string, number>>();
  /** Rooms in this incarnation's room set in Redis, where a reaper looks. Listed before held, unlisted after. */
  readonly #listed = new Set<string>();
  /** Rooms whose holds Redis may not have as `#held` says; the next heartbeat writes them whole. */
  readonly #unsynced = new Set<string>();
  readonly #o: RoomPresenceOptions;

  constructor(options: RoomPresenceOptions) {
    this.#o = options;
  }

  /**
   * Holds `connections` of the user's connections in the room (0 lets go); resolves with the count and first `list` users.
   * Rejects with NotAMemberError, holding nothing more, for a non-member of a members-only room,
   * and with RestrictedError for a user banned from the room.
   */
  async set(room: string, user: string, connections: number, list = 0): Promise<RoomHeadcount> {
    let users = this.#held.get(room);
    const prior = users?.get(user);
    if (connections > 0) {
      if (users === undefined) this.#held.set(room, (users = new Map()));
      users.set(user, connections);
    } else if (users?.delete(user) && users.size === 0) {
      this.#held.delete(room);
    }
    try {
      return await this.#o.call(() => this.#write(room, user, connections, list));
    } catch (err) {
      if (err instanceof NotAMemberError || err instanceof RestrictedError) this.#restore(room, user, prior);
      else this.#unsynced.add(room);
      throw err;
    }
  }

  /** Puts back what this node held of a user the room refused. */
  #restore(room: string, user: string, prior: number | undefined): void {
    const users = this.#held.get(room);
    if (prior !== undefined) users?.set(user, prior);
    else if (users?.delete(user) && users.size === 0) this.#held.delete(room);
  }

  async members(room: string, after: string | undefined, limit: number): Promise<MemberPage> {
    const { keys, command } = this.#o;
    const [count, users] = await this.#o.call(() => command.chatPresencePage(keys.roomPresent(room), keys.roomConnections(room), after ?? '', limit, 0));
    return users.length > limit ? { users: users.slice(0, limit), count, next: users[limit - 1]! } : { users, count };
  }

  /** Writes whole, a few at a time, the rooms whose last write failed or may have been lost. */
  async heartbeat(): Promise<void> {
    const rooms = [...this.#unsynced];
    this.#unsynced.clear();
    await inParallel(rooms, CONCURRENCY, (room) => this.#sync(room).catch((err: unknown) => {
      this.#unsynced.add(room);
      this.#o.log.debug({ err, room }, 'presence resync failed; retried on the next heartbeat');
    }));
  }

  /** Redis may have lost what this node wrote (it restarted, failed over, or reaped this node): write everything again. */
  resyncAll(): void {
    this.#listed.clear();
    for (const room of this.#held.keys()) this.#unsynced.add(room);
  }

  /** Withdraws `incarnation`'s presence from every room it held: this node's at shutdown, or a dead node's. */
  async withdrawNode(incarnation: string): Promise<void> {
    const { command, keys, log } = this.#o;
    const own = incarnation === this.#o.incarnation;
    const rooms = own ? [...new Set([...this.#held.keys(), ...this.#listed])] : await command.smembers(keys.nodeRooms(incarnation));
    if (own) this.#held.clear();
    await inParallel(rooms, CONCURRENCY, (room) => this.#withdrawFrom(room, incarnation)
      .catch((err: unknown) => log.warn({ err, room, node: incarnation }, 'presence withdrawal failed')));
    await command.del(keys.nodeRooms(incarnation));
  }

  async #withdrawFrom(room: string, incarnation: string): Promise<void> {
    const { command, events } = this.#o;
    for (;;) {
      const [held, count, epoch] = await command.chatPresenceWithdraw(...this.#keysOf(room, incarnation), ...this.#argsOf(room), WITHDRAW_BATCH, ...events.args());
      if (held > 0) continue;
      if (count === 0) await this.#prune(room, epoch);
      return;
    }
  }

  /**
   * Listed first, so a crash between the two leaves at most a room listed with
   * nothing held (withdrawing it changes nothing); then the script; then what
   * lives on other slots: the room index and the user's rooms (a crash between
   * leaves the index short until the next arrival, never a member nobody withdraws).
   * Nothing is awaited before the script goes out: a room's writes reach Redis in
   * the order they were made (a leave right after a join must not overtake it).
   */
  async #write(room: string, user: string, connections: number, list: number): Promise<RoomHeadcount> {
    const { command, keys, incarnation, events } = this.#o;
    const listing = connections > 0 ? this.#list(room) : undefined;
    const reply = await command.chatPresenceSet(
      ...this.#keysOf(room, incarnation), keys.roomConversation(room), keys.roomMembers(room), keys.roomModeration(room),
      ...this.#argsOf(room), user, connections, list, ...events.args(),
    );
    await listing;
    if (reply[0] === -1) throw new NotAMemberError(room, user);
    if (reply[0] === -2) throw new RestrictedError('ban', String(reply[1]));
    if (connections > 0) {
      const [fresh, epoch, count, first, seq] = reply as [number, string, number, string[], number];
      if (fresh === 1) {
        await Promise.all([
          count === 1 ? command.chatRoomIndexAdd(keys.roomIndex(), keys.roomIndexEpochs(), room, epoch) : undefined,
          command.sadd(keys.userRooms(user, incarnation), room),
        ]);
      }
      return { count, first, seq };
    }
    const [count, epoch] = reply as [number, string];
    await Promise.all([
      count === 0 ? this.#prune(room, epoch) : undefined,
      command.srem(keys.userRooms(user, incarnation), room),
      this.#unlistIfLetGo(room),
    ]);
    return { count, first: [], seq: -1 };
  }

  /** Makes Redis hold, for this incarnation in `room`, exactly what `#held` says. */
  async #sync(room: string): Promise<void> {
    const { command, keys, incarnation, events } = this.#o;
    const users = this.#held.get(room);
    const listing = users === undefined ? undefined : this.#list(room);
    const holds = users === undefined ? '' : [...users].map(([user, n]) => `${user}=${n}`).join(',');
    const [count, epoch] = await command.chatPresenceSync(...this.#keysOf(room, incarnation), ...this.#argsOf(room), holds, ...events.args());
    await listing;
    if (users === undefined) {
      await Promise.all([count === 0 ? this.#prune(room, epoch) : undefined, this.#unlistIfLetGo(room)]);
      return;
    }
    await Promise.all([
      command.chatRoomIndexAdd(keys.roomIndex(), keys.roomIndexEpochs(), room, epoch),
      ...[...users.keys()].map((user) => command.sadd(keys.userRooms(user, incarnation), room)),
    ]);
  }

  /**
   * Lists the room in this incarnation's set, sent before the script that holds
   * anyone there: on one Redis the same connection runs it first; on a Redis
   * Cluster (another shard) a failure leaves the room unsynced, so the next
   * heartbeat lists it again.
   */
  #list(room: string): Promise<void> | undefined {
    if (this.#listed.has(room)) return undefined;
    this.#listed.add(room);
    return this.#o.command.sadd(this.#o.keys.nodeRooms(this.#o.incarnation), room).then(() => {}, (err: unknown) => {
      this.#listed.delete(room);
      throw err;
    });
  }

  /** Unlists a room this node no longer holds anyone in (checked after the write: a join may have come meanwhile). */
  async #unlistIfLetGo(room: string): Promise<void> {
    if (this.#held.has(room) || !this.#listed.delete(room)) return;
    await this.#o.command.srem(this.#o.keys.nodeRooms(this.#o.incarnation), room);
  }

  #prune(room: string, epoch: string): Promise<number> {
    const { command, keys } = this.#o;
    return command.chatRoomIndexPrune(keys.roomIndex(), keys.roomIndexEpochs(), room, epoch);
  }

  #keysOf(room: string, incarnation: string): RoomKeys {
    const { keys, events } = this.#o;
    const present = keys.roomPresent(room);
    return [present, keys.roomConnections(room), keys.roomHold(room, incarnation), keys.roomPresence(room), events.streamOf(present)];
  }

  #argsOf(room: string): RoomArgs {
    const { keys, publish, ttlMs } = this.#o;
    return [keys.roomChannel(room), publish, room, ttlMs * 3];
  }
}
