import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compareIds } from '@chat/protocol';
import type { Broker, BrokerListener, CountedMessage, PresenceChange } from '../src/index.js';

/** Brokers made by one harness share a backing store, as the nodes of one cluster do. */
export interface BrokerHarness {
  create(): Broker;
  cleanup(): Promise<void>;
}

export const HISTORY_SIZE = 20;

export class RecordingListener implements BrokerListener {
  readonly messages: Array<{ room: string; id: string; ts: number; frame: string; prev: string; counted?: CountedMessage }> = [];
  readonly statuses: boolean[] = [];
  readonly presence: string[] = [];
  readonly events: string[] = [];
  readonly userFrames: string[] = [];
  readonly userCommands: string[] = [];
  readonly nodeMessages: string[] = [];
  readonly losses: string[] = [];
  /** Messages and losses as they arrived, per room: `m:<id>` and `l:<id>`. */
  readonly arrivals = new Map<string, string[]>();
  onRoomLoss(room: string, upTo: string): void {
    this.losses.push(`${room}:${upTo}`);
    this.#arrived(room, `l:${upTo}`);
  }
  #arrived(room: string, what: string): void {
    this.arrivals.set(room, [...(this.arrivals.get(room) ?? []), what]);
  }
  /** `room:user:online|offline:count`, as announced. */
  readonly counts: string[] = [];
  /** The seq of each change, per room. */
  readonly seqs = new Map<string, number[]>();
  onPresence(room: string, { user, online, count, seq }: PresenceChange): void {
    this.presence.push(`${room}:${user}:${online ? 'online' : 'offline'}`);
    this.counts.push(`${room}:${user}:${online ? 'online' : 'offline'}:${count}`);
    this.seqs.set(room, [...(this.seqs.get(room) ?? []), seq]);
  }
  onRoomEvent(room: string, user: string, frame: Uint8Array): void {
    this.events.push(`${room}:${user}:${Buffer.from(frame).toString()}`);
  }
  onUserFrame(user: string, frame: Uint8Array): void {
    this.userFrames.push(`${user}:${Buffer.from(frame).toString()}`);
  }
  onUserCommand(user: string, command: string): void {
    this.userCommands.push(`${user}:${command}`);
  }
  onNodeMessage(payload: Uint8Array): void {
    this.nodeMessages.push(Buffer.from(payload).toString());
  }
  onRoomMessage(room: string, id: string, ts: number, frame: Uint8Array, prev: string, counted?: CountedMessage): void {
    this.messages.push({ room, id, ts, frame: Buffer.from(frame).toString(), prev, ...(counted !== undefined && { counted }) });
    this.#arrived(room, `m:${id}`);
  }
  onStatus(up: boolean): void {
    this.statuses.push(up);
  }
  inRoom(room: string) {
    return this.messages.filter((m) => m.room === room);
  }
}

export async function eventually(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Two started nodes of a fresh harness for every test, closed after it (call inside a describe). */
export function twoNodes<H extends { create(): Broker; cleanup(): Promise<void> }>(makeHarness: () => Promise<H>): { harness: H; a: Broker; b: Broker; la: RecordingListener; lb: RecordingListener } {
  const nodes = {} as { harness: H; a: Broker; b: Broker; la: RecordingListener; lb: RecordingListener };
  beforeEach(async () => {
    nodes.harness = await makeHarness();
    nodes.a = nodes.harness.create();
    nodes.b = nodes.harness.create();
    nodes.la = new RecordingListener();
    nodes.lb = new RecordingListener();
    nodes.a.start(nodes.la);
    nodes.b.start(nodes.lb);
    await eventually(() => nodes.a.up && nodes.b.up, 'both brokers up');
  });
  afterEach(async () => {
    await nodes.a.close();
    await nodes.b.close();
    await nodes.harness.cleanup();
  });
  return nodes;
}

const append = async (broker: Broker, room: string, text: string, ts = Date.now()) =>
  (await broker.append({ room, user: 'u', head: `<${room}|`, body: `|${text}>`, ts })).id;

/** The behaviour every Broker implementation promises (see broker.ts). */
export function brokerContract(name: string, makeHarness: () => Promise<BrokerHarness>): void {
  describe(`${name} (Broker contract)`, () => {
    const nodes = twoNodes(makeHarness);
    let harness: BrokerHarness, a: Broker, b: Broker, la: RecordingListener, lb: RecordingListener;
    beforeEach(() => ({ harness, a, b, la, lb } = nodes));

    it('reports that it is up', () => {
      expect(la.statuses.at(-1)).toBe(true);
    });

    it('delivers every message to every subscribed broker once, in id order, as head+id+body', async () => {
      await a.subscribeRoom('r1');
      await b.subscribeRoom('r1');
      const ids = await Promise.all(Array.from({ length: 30 }, (_, i) => append(i % 2 ? a : b, 'r1', `m${i}`, 1000 + i)));
      await eventually(() => la.inRoom('r1').length === 30 && lb.inRoom('r1').length === 30, '30 deliveries on each');
      const seenA = la.inRoom('r1').map((m) => m.id);
      expect(seenA).toEqual(lb.inRoom('r1').map((m) => m.id));
      expect([...seenA].sort(compareIds)).toEqual(seenA);
      expect(new Set(seenA)).toEqual(new Set(ids));
      for (const m of la.inRoom('r1')) expect(m.frame).toMatch(new RegExp(`^<r1\\|${m.id}\\|m\\d+>$`));
      const first = la.inRoom('r1').find((m) => m.frame.endsWith('|m0>'))!;
      expect(first.ts).toBe(1000);
      // Each message names the one stored before it, so a gap can be seen.
      expect(la.inRoom('r1').map((m) => m.prev)).toEqual(['0-0', ...seenA.slice(0, -1)]);
    });

    it('delivers only rooms a broker subscribed to, and stops after unsubscribe', async () => {
      await a.subscribeRoom('x');
      await b.subscribeRoom('y');
      await append(a, 'x', 'for-x');
      await append(a, 'y', 'for-y');
      await eventually(() => la.messages.length === 1 && lb.messages.length === 1, 'one delivery each');
      expect(la.messages[0]!.room).toBe('x');
      expect(lb.messages[0]!.room).toBe('y');
      await b.unsubscribeRoom('y');
      await b.subscribeRoom('x');
      await append(a, 'y', 'after-unsubscribe');
      await append(a, 'x', 'marker');
      await eventually(() => lb.inRoom('x').length === 1, 'marker on b');
      expect(lb.inRoom('y')).toHaveLength(1);
    });

    it('pages history newest first, oldest first within a page, before exclusive', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) ids.push(await append(a, 'h', `m${i}`));
      expect((await b.history('h', undefined, 3)).map((m) => m.id)).toEqual(ids.slice(7));
      expect((await b.history('h', ids[7], 3)).map((m) => m.id)).toEqual(ids.slice(4, 7));
      expect((await b.history('h', ids[2], 50)).map((m) => m.body)).toEqual(['|m0>', '|m1>']);
      expect(await b.history('h', ids[0], 5)).toEqual([]);
      expect(await b.history('h', '0-0', 5)).toEqual([]);
      expect(await b.history('never-used', undefined, 5)).toEqual([]);
    });

    it('returns what came after an id, and says when it is complete', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 8; i++) ids.push(await append(a, 'q', `m${i}`));
      const all = await b.after('q', '0-0', 100);
      expect(all).toEqual({ newest: ids[7], lost: '0-0', messages: ids.map((id, i) => ({ id, body: `|m${i}>` })) });
      const tail = await b.after('q', ids[5]!, 100);
      expect(tail.messages.map((m) => m.id)).toEqual(ids.slice(6));
      expect(tail.gap).toBeUndefined();
      // Truncated by the limit: the newest ones, not complete.
      const cut = await b.after('q', ids[1]!, 3);
      expect(cut.messages.map((m) => m.id)).toEqual(ids.slice(5));
      expect(cut.gap).toBe('limit');
      expect(await b.after('q', ids[7]!, 10)).toEqual({ messages: [], newest: ids[7], lost: '0-0' });
      expect(await b.after('empty-room', '0-0', 10)).toEqual({ messages: [], newest: '0-0', lost: '0-0' });
      expect(await b.streamHead('q')).toEqual({ newest: ids[7], lost: '0-0' });
    });

    it('proves continuity only from an id it still stores: anything else is unproven', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push(await append(a, 'u', `m${i}`));
      const [ms, seq] = ids[1]!.split('-').map(Number) as [number, number];
      // Between two stored ids, newer than all of them, or never in the room: the stream cannot vouch for it.
      expect((await b.after('u', `${ms}-${seq + 1000}`, 100)).gap).toBe('unproven');
      expect((await b.after('u', '18446744073709551615-18446744073709551615', 100)).gap).toBe('unproven');
      const beyond = await b.after('u', `${Number(ids[3]!.split('-')[0]) + 60_000}-0`, 100);
      expect(beyond).toMatchObject({ gap: 'unproven', messages: [], newest: ids[3] });
      expect((await b.after('never-used', '1-0', 100)).gap).toBe('unproven');
    });

    it('records a loss mark that only rises, tells subscribers when it rises, and reports rejoins from before it', async () => {
      await a.subscribeRoom('l');
      await b.subscribeRoom('l');
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await append(a, 'l', `m${i}`));
      await a.markLost('l', ids[3]!);
      await a.markLost('l', ids[2]!); // lower: ignored, not announced
      await eventually(() => la.losses.length === 1 && lb.losses.length === 1, 'one loss report each');
      expect(lb.losses).toEqual([`l:${ids[3]}`]);
      expect(await b.streamHead('l')).toEqual({ newest: ids[4], lost: ids[3] });
      const before = await b.after('l', ids[1]!, 100);
      expect(before).toMatchObject({ gap: 'lost', lost: ids[3] });
      expect(before.messages.map((m) => m.id)).toEqual(ids.slice(2));
      expect((await b.after('l', ids[3]!, 100)).gap).toBeUndefined(); // still stored here, and at the mark
      expect((await b.after('l', ids[4]!, 100)).gap).toBeUndefined();
    });

    it('marks a loss before appending when the sender delivered an id newer than anything stored', async () => {
      await b.subscribeRoom('d');
      const first = await append(a, 'd', 'first');
      const [ms] = first.split('-');
      const delivered = `${ms}-999`; // delivered once, gone from the stream now
      const { id } = await a.append({ room: 'd', user: 'u', head: '<d|', body: '|next>', ts: 1, lastDelivered: delivered });
      const { id: again } = await a.append({ room: 'd', user: 'u', head: '<d|', body: '|again>', ts: 1, lastDelivered: id }); // in step: nothing to mark
      await eventually(() => lb.inRoom('d').length === 3, 'three messages');
      // The loss reaches subscribers before the message appended after it.
      expect(lb.arrivals.get('d')).toEqual([`m:${first}`, `l:${delivered}`, `m:${id}`, `m:${again}`]);
      expect((await b.streamHead('d')).lost).toBe(delivered);
      expect((await b.after('d', first, 100)).gap).toBe('lost');
    });

    it('announces a user online when the first node has them, offline when the last lets go, with the count each change left', async () => {
      await a.subscribeRoom('p');
      await b.subscribeRoom('p');
      expect(await a.presence.join('p', 'ann', { list: 10 })).toEqual({ count: 1, first: ['ann'], seq: 1 });
      expect(await b.presence.join('p', 'ann', { list: 10 })).toEqual({ count: 1, first: ['ann'], seq: 1 });
      expect(await b.presence.join('p', 'bob', { list: 10 })).toEqual({ count: 2, first: ['ann', 'bob'], seq: 2 });
      expect(await a.presence.join('p', 'ann', { list: 10 })).toEqual({ count: 2, first: ['ann', 'bob'], seq: 2 }); // idempotent
      await eventually(() => la.presence.length === 2 && lb.presence.length === 2, 'two online events each');
      expect(la.counts).toEqual(['p:ann:online:1', 'p:bob:online:2']);
      expect(la.seqs.get('p')).toEqual([1, 2]);
      await a.presence.leave('p', 'ann');
      await b.presence.leave('p', 'bob');
      await eventually(() => la.presence.length === 3, 'bob offline');
      expect(la.counts[2]).toBe('p:bob:offline:1');
      await b.presence.leave('p', 'ann');
      await eventually(() => lb.presence.length === 4, 'ann offline');
      expect(lb.counts).toEqual(['p:ann:online:1', 'p:bob:online:2', 'p:bob:offline:1', 'p:ann:offline:0']);
      expect(await a.presence.join('p', 'cid')).toMatchObject({ count: 1, first: [] });
    });

    it('answers a join with the count and the first users by id, never more than asked for', async () => {
      const users = Array.from({ length: 30 }, (_, i) => `u${String(29 - i).padStart(2, '0')}`);
      for (const [i, user] of users.entries()) await (i % 2 === 0 ? a : b).presence.join('big', user);
      expect(await a.presence.join('big', 'zed', { list: 5 })).toEqual({ count: 31, first: ['u00', 'u01', 'u02', 'u03', 'u04'], seq: 31 });
      expect(await b.presence.join('big', 'Aaron', { list: 3 })).toEqual({ count: 32, first: ['Aaron', 'u00', 'u01'], seq: 32 }); // byte order: capitals first
    });

    it('pages a room\'s users in id order across nodes, with the count, and says when a page is the last', async () => {
      const users = Array.from({ length: 25 }, (_, i) => `m${String(i).padStart(2, '0')}`);
      for (const [i, user] of [...users].reverse().entries()) await (i % 3 === 0 ? a : b).presence.join('paged', user);
      const seen: string[] = [];
      let after: string | undefined;
      for (let page = 0; page < 10; page++) {
        const { users: got, count, next } = await (page % 2 === 0 ? a : b).presence.members('paged', after, 7);
        expect(count).toBe(25);
        expect(got.length).toBeLessThanOrEqual(7);
        seen.push(...got);
        if (next === undefined) break;
        expect(next).toBe(got.at(-1));
        after = next;
      }
      expect(seen).toEqual(users);
      expect(await a.presence.members('paged', 'm24', 10)).toEqual({ users: [], count: 25 });
      expect(await a.presence.members('paged', 'm22', 2)).toEqual({ users: ['m23', 'm24'], count: 25 });
      expect(await a.presence.members('paged', 'm21', 2)).toEqual({ users: ['m22', 'm23'], count: 25, next: 'm23' });
      expect(await a.presence.members('nobody-here', undefined, 10)).toEqual({ users: [], count: 0 });
    });

    it('applies a room\'s writes in the order they were made: a leave made before the join finished leaves nobody', async () => {
      for (let i = 0; i < 5; i++) {
        const room = `order-${i}`; // new to the node each time
        await Promise.all([a.presence.join(room, 'quick'), a.presence.leave(room, 'quick')]);
        expect(await b.presence.members(room, undefined, 10), room).toEqual({ users: [], count: 0 });
      }
    });

    it('keeps the count exact through joins and leaves of one user on several nodes', async () => {
      await a.subscribeRoom('c');
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 40; i++) await (i % 2 === 0 ? a : b).presence.join('c', `x${i}`, { connections: 1 + (i % 3) });
        for (let i = 0; i < 40; i += 4) await (i % 2 === 0 ? b : a).presence.join('c', `x${i}`); // the same users through the other node too
        for (let i = 0; i < 40; i += 2) await a.presence.leave('c', `x${i}`);
        expect((await b.presence.members('c', undefined, 100)).count).toBe(40 - 10); // x0, x4... stay through b
        for (let i = 0; i < 40; i++) await b.presence.leave('c', `x${i}`);
        for (let i = 1; i < 40; i += 2) await a.presence.leave('c', `x${i}`);
        expect(await b.presence.members('c', undefined, 100)).toEqual({ users: [], count: 0 });
      }
      await eventually(() => la.counts.at(-1)?.endsWith(':0') === true, 'the last change heard says 0');
      const counts = la.counts.map((c) => Number(c.split(':').at(-1)));
      const steps = la.counts.map((c) => (c.includes(':online:') ? 1 : -1));
      let expected = 0;
      expect(counts).toEqual(steps.map((step) => (expected += step))); // every change announced once, in order
      const seqs = la.seqs.get('c')!;
      expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i)); // numbered in that order
    });

    it('withdraws a closing node\'s presence at once', async () => {
      await a.subscribeRoom('w');
      await b.presence.join('w', 'leaver');
      await eventually(() => la.presence.length === 1, 'online');
      await b.close();
      await eventually(() => la.presence.length === 2, 'offline after close');
      expect(la.presence).toEqual(['w:leaver:online', 'w:leaver:offline']);
    });

    it('withdraws a closing node\'s thousand users of a room, every one announced once, down to an empty room', async () => {
      await a.subscribeRoom('crowd');
      await a.presence.join('crowd', 'stays');
      for (let i = 0; i < 1200; i++) await b.presence.join('crowd', `c${i}`);
      await eventually(() => la.presence.length === 1201, 'every arrival');
      expect((await a.presence.members('crowd', undefined, 1)).count).toBe(1201);
      await b.close();
      await eventually(() => la.presence.length === 2401, 'every departure');
      expect(new Set(la.presence.slice(1201)).size).toBe(1200);
      expect(la.counts.at(-1)).toMatch(/:offline:1$/);
      expect(await a.presence.members('crowd', undefined, 10)).toEqual({ users: ['stays'], count: 1 });
    });

    it('passes ephemeral room events to subscribers with the user they are about', async () => {
      await b.subscribeRoom('e');
      await a.publishRoomEvent('e', 'typist', '{"t":1}');
      await eventually(() => lb.events.length === 1, 'event');
      expect(lb.events).toEqual(['e:typist:{"t":1}']);
      expect(await a.history('e', undefined, 10)).toEqual([]);
    });

    it('delivers a direct frame to every node of the user and counts them; 0 when nobody has them', async () => {
      await a.subscribeUser('dana');
      await b.subscribeUser('dana');
      const first = await a.sendDirect({ to: 'dana', head: '<', body: '>', ts: 1 });
      expect(first.receivers).toBe(2);
      const second = await b.sendDirect({ to: 'dana', head: '<', body: '>', ts: 1 });
      expect(compareIds(second.id, first.id)).toBeGreaterThan(0);
      await eventually(() => la.userFrames.length === 2 && lb.userFrames.length === 2, 'two frames each');
      expect(la.userFrames).toEqual([`dana:<${first.id}>`, `dana:<${second.id}>`]);
      expect((await a.sendDirect({ to: 'nobody', head: '<', body: '>', ts: 1 })).receivers).toBe(0);
      await a.unsubscribeUser('dana');
      await b.publishToUser('dana', 'copy');
      await eventually(() => lb.userFrames.length === 3, 'copy');
      expect(la.userFrames).toHaveLength(2);
    });

    it('stores an append with an idempotency key once, on any node; a repeat gets the first id and ts', async () => {
      await a.subscribeRoom('i');
      const keyed = (broker: Broker, key: string, body: string, ts: number, room = 'i') =>
        broker.append({ room, user: 'u', head: `<${room}|`, body: `|${body}>`, ts, idempotencyKey: key });
      const first = await keyed(a, 'alice/k1', 'one', 100);
      expect(first).toMatchObject({ ts: 100, repeat: false });
      // Racing repeats from both nodes, and a late one: none stores again.
      const repeats = await Promise.all([keyed(a, 'alice/k1', 'one', 200), keyed(b, 'alice/k1', 'one', 300), keyed(b, 'alice/k1', 'other', 400)]);
      for (const r of repeats) expect(r).toEqual({ id: first.id, ts: 100, repeat: true });
      const other = await keyed(b, 'alice/k2', 'two', 500);
      const elsewhere = await keyed(b, 'alice/k1', 'one', 600, 'i2');
      expect([other.repeat, elsewhere.repeat]).toEqual([false, false]);
      expect((await b.history('i', undefined, 10)).map((m) => m.body)).toEqual(['|one>', '|two>']);
      await eventually(() => la.inRoom('i').length === 2, 'two deliveries');
      expect(la.inRoom('i').map((m) => m.id)).toEqual([first.id, other.id]);
    });

    it('delivers a keyed direct message once, and again after an attempt that reached nobody', async () => {
      await b.subscribeUser('erin');
      const dm = (broker: Broker, to: string, ts: number) => broker.sendDirect({ to, head: '<', body: '>', ts, idempotencyKey: 'frank/k' });
      const offline = await dm(a, 'nobody-here', 1);
      expect(offline).toMatchObject({ receivers: 0, repeat: false });
      expect(await dm(a, 'nobody-here', 2)).toMatchObject({ receivers: 0, repeat: false }); // not recorded: nobody got it
      const first = await dm(a, 'erin', 3);
      expect(first).toMatchObject({ receivers: 1, ts: 3, repeat: false });
      expect(await dm(b, 'erin', 4)).toEqual({ id: first.id, ts: 3, receivers: 0, repeat: true });
      await eventually(() => lb.userFrames.length === 1, 'one frame');
      await new Promise((r) => setTimeout(r, 50));
      expect(lb.userFrames).toEqual([`erin:<${first.id}>`]);
    });

    it(`keeps about ${HISTORY_SIZE} messages and reports a trimmed gap as incomplete`, async () => {
      const ids: string[] = [];
      for (let i = 0; i < HISTORY_SIZE * 3; i++) ids.push(await append(a, 't', `m${i}`));
      const stored = await b.history('t', undefined, 1000);
      expect(stored.length).toBeGreaterThanOrEqual(HISTORY_SIZE);
      expect(stored.length).toBeLessThan(HISTORY_SIZE * 2);
      expect(stored.at(-1)!.id).toBe(ids.at(-1));
      const oldestKept = stored[0]!.id;
      const beforeOldest = ids[ids.indexOf(oldestKept) - 1]!;
      expect((await b.after('t', beforeOldest, 1000)).gap).toBeUndefined(); // the newest trimmed id: continuous
      const twoBefore = ids[ids.indexOf(oldestKept) - 2]!;
      expect((await b.after('t', twoBefore, 1000)).gap).toBe('trimmed');
      expect((await b.after('t', '0-0', 1000)).gap).toBe('trimmed');
    });
  });
}
