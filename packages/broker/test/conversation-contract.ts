import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConversationConflictError, NotAMemberError, PositionAheadError, unreadOf,
  type Broker, type Membership, type ReadPositions,
} from '../src/index.js';
import { HISTORY_SIZE, RecordingListener, eventually } from './contract.js';

/** Nodes of one cluster with the membership and read positions over their shared state. */
export interface ConversationHarness {
  create(): Broker;
  membership(): Membership;
  readPositions(): ReadPositions;
  cleanup(): Promise<void>;
}

const post = (broker: Broker, room: string, user: string, text: string, key?: string) => broker.append({
  room, user, head: `{"room":"${room}","id":"`, body: `","user":"${user}","text":"${text}"}`, ts: Date.now(), ...(key !== undefined && { idempotencyKey: key }),
});

/** What Membership and ReadPositions promise, with the broker's appends and presence that ask them (see membership.ts, read-positions.ts). */
export function conversationContract(name: string, makeHarness: () => Promise<ConversationHarness>): void {
  describe(`${name} (Membership and ReadPositions contract)`, () => {
    let harness: ConversationHarness;
    let broker: Broker;
    let listener: RecordingListener;
    let membership: Membership;
    let reads: ReadPositions;

    beforeEach(async () => {
      harness = await makeHarness();
      broker = harness.create();
      listener = new RecordingListener();
      broker.start(listener);
      await eventually(() => broker.up, 'broker up');
      membership = harness.membership();
      reads = harness.readPositions();
    });
    afterEach(async () => {
      await broker.close();
      await harness.cleanup();
    });

    it('leaves an open room as it was: anyone posts, nothing is counted', async () => {
      await broker.subscribeRoom('open');
      await post(broker, 'open', 'anyone', 'hi');
      expect(await membership.access('open', 'anyone')).toBe('open');
      await eventually(() => listener.inRoom('open').length === 1, 'the message');
      expect(listener.inRoom('open')[0]!.counted).toBeUndefined();
      expect(await reads.state('open', 'anyone')).toBeUndefined();
    });

    it('admits only members: an outsider posts nothing and never becomes present', async () => {
      await broker.subscribeRoom('club');
      expect(await membership.add('club', ['alice', 'bob'])).toEqual(['alice', 'bob']);
      expect(await membership.add('club', ['bob', 'carol'])).toEqual(['carol']);
      expect([await membership.access('club', 'alice'), await membership.access('club', 'mallory')]).toEqual(['member', 'outsider']);
      await expect(post(broker, 'club', 'mallory', 'let me in')).rejects.toBeInstanceOf(NotAMemberError);
      await expect(broker.presence.join('club', 'mallory')).rejects.toBeInstanceOf(NotAMemberError);
      await broker.presence.join('club', 'alice');
      expect((await broker.presence.members('club', undefined, 10)).users).toEqual(['alice']);
      expect(await broker.history('club', undefined, 10)).toEqual([]);
      expect(await membership.members('club', undefined, 2)).toEqual({ users: ['alice', 'bob'], count: 3, next: 'bob' });
      expect(await membership.members('club', 'bob', 2)).toEqual({ users: ['carol'], count: 3 });
      expect(await membership.roomsOf('carol')).toEqual(['club']);
    });

    it('counts other members\' messages once, resends included, and never the sender\'s own', async () => {
      await broker.subscribeRoom('pair');
      await membership.add('pair', ['alice', 'bob']);
      await post(broker, 'pair', 'bob', 'one', 'k1');
      await post(broker, 'pair', 'bob', 'one again', 'k1');
      const second = await post(broker, 'pair', 'bob', 'two');
      const alice = (await reads.state('pair', 'alice'))!;
      const bob = (await reads.state('pair', 'bob'))!;
      expect([unreadOf(alice), unreadOf(bob)]).toEqual([2, 0]);
      expect(bob.read).toEqual({ id: second.id, number: 2 });
      expect(alice.last?.id).toBe(second.id);
      await eventually(() => listener.inRoom('pair').length === 2, 'two messages');
      expect(listener.inRoom('pair').map((m) => m.counted)).toEqual([{ number: 1, user: 'bob' }, { number: 2, user: 'bob' }]);
    });

    it('moves a read position only forward, refuses a future id and a non-member', async () => {
      await membership.add('news', ['alice', 'bob']);
      const ids = [];
      for (let i = 0; i < 4; i++) ids.push((await post(broker, 'news', 'bob', `m${i}`)).id);
      const moved = await reads.markRead('news', 'alice', ids[2]!);
      expect({ unread: unreadOf(moved), moved: moved.moved }).toEqual({ unread: 1, moved: true });
      const back = await reads.markRead('news', 'alice', ids[0]!);
      expect({ unread: unreadOf(back), moved: back.moved, read: back.read.id }).toEqual({ unread: 1, moved: false, read: ids[2] });
      const [ms] = ids[3]!.split('-');
      await expect(reads.markRead('news', 'alice', `${Number(ms) + 60_000}-0`)).rejects.toBeInstanceOf(PositionAheadError);
      await expect(reads.markRead('news', 'mallory', ids[3]!)).rejects.toBeInstanceOf(NotAMemberError);
      expect(unreadOf((await reads.state('news', 'alice'))!)).toBe(1);
    });

    it('keeps counts when the history is trimmed', async () => {
      await membership.add('busy', ['alice', 'bob']);
      const ids = [];
      for (let i = 0; i < HISTORY_SIZE * 3; i++) ids.push((await post(broker, 'busy', 'bob', `m${i}`)).id);
      expect((await broker.history('busy', undefined, 100)).length).toBeLessThan(HISTORY_SIZE * 3);
      expect(unreadOf((await reads.state('busy', 'alice'))!)).toBe(HISTORY_SIZE * 3);
      expect(unreadOf(await reads.markRead('busy', 'alice', ids.at(-5)!))).toBe(4);
    });

    it('opens one direct conversation per pair, whoever opens it and however often', async () => {
      const other = harness.membership();
      await Promise.all([membership.openPair('dm:ab', 'alice', 'bob'), other.openPair('dm:ab', 'bob', 'alice'), membership.openPair('dm:ab', 'alice', 'bob')]);
      expect(await membership.members('dm:ab', undefined, 10)).toEqual({ users: ['alice', 'bob'], count: 2 });
      expect((await reads.state('dm:ab', 'bob'))?.pair).toBe('alice|bob');
      await expect(membership.openPair('dm:ab', 'alice', 'carol')).rejects.toBeInstanceOf(ConversationConflictError);
      await membership.add('team', ['alice']);
      await expect(membership.openPair('team', 'alice', 'bob')).rejects.toBeInstanceOf(ConversationConflictError);
      expect((await membership.roomsOf('alice')).sort()).toEqual(['dm:ab', 'team']);
    });

    it('forgets a removed member: no access, no position, not in their rooms', async () => {
      await membership.add('crew', ['alice', 'bob']);
      await post(broker, 'crew', 'alice', 'hello');
      expect(await membership.remove('crew', ['bob', 'nobody'])).toEqual(['bob']);
      expect(await membership.access('crew', 'bob')).toBe('outsider');
      expect(await reads.state('crew', 'bob')).toBeUndefined();
      expect(await membership.roomsOf('bob')).toEqual([]);
      await expect(post(broker, 'crew', 'bob', 'still here?')).rejects.toBeInstanceOf(NotAMemberError);
      const positions = await reads.positions('crew', ['alice', 'bob']);
      expect([...positions.keys()]).toEqual(['alice']);
      const [crew, nothing] = await reads.activity(['crew', 'nothing']);
      expect([crew! > 0, nothing]).toEqual([true, 0]);
      await membership.add('later', ['alice']);
      await post(broker, 'later', 'alice', 'after');
      const [before, after] = await reads.activity(['crew', 'later']);
      expect(after!).toBeGreaterThan(before!);
    });
  });
}
