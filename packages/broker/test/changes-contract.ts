import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ChangeRefusedError, NotAMemberError, RestrictedError,
  unreadOf, type Broker, type Membership, type MessageChanges, type Moderation, type ReadPositions, type StoredMessage,
} from '../src/index.js';
import { HISTORY_SIZE, RecordingListener, eventually } from './contract.js';

/** Nodes of one cluster, each with the changes of its messages, and what they share. */
export interface ChangesHarness {
  create(): { broker: Broker; changes: MessageChanges };
  moderation(): Moderation;
  membership(): Membership;
  readPositions(): ReadPositions;
  /** Every stored byte under the harness's keys, for a search (Redis only). */
  dump?(): Promise<string>;
  cleanup(): Promise<void>;
}

const MESSAGE_HEAD = (room: string) => `{"type":"message","room":"${room}","id":"`;
const CHANGE_HEAD = (room: string, type: string) => `{"type":"${type}","room":"${room}","id":"`;

async function post(broker: Broker, room: string, user: string, text: string): Promise<string> {
  const ts = Date.now();
  const { id } = await broker.append({ room, user, head: MESSAGE_HEAD(room), body: `","user":"${user}","text":${JSON.stringify(text)},"ts":${ts}}`, ts });
  return id;
}

function edit(changes: MessageChanges, room: string, user: string, target: string, text: string) {
  const ts = Date.now();
  return changes.edit({
    room, user, target, ts, head: CHANGE_HEAD(room, 'edit'), text: JSON.stringify(text), messageHead: MESSAGE_HEAD(room),
    body: `","target":"${target}","user":"${user}","text":${JSON.stringify(text)},"ts":${ts}}`,
  });
}

function remove(changes: MessageChanges, room: string, user: string, target: string, moderator = false) {
  const ts = Date.now();
  return changes.delete({ room, user, target, ts, head: CHANGE_HEAD(room, 'delete'), body: `","target":"${target}","user":"${user}","ts":${ts}}`, moderator });
}

function react(changes: MessageChanges, room: string, user: string, target: string, reaction: string, add = true) {
  return changes.react({ room, user, target, reaction, add, ts: Date.now(), head: CHANGE_HEAD(room, 'reaction') });
}

const parsed = (messages: StoredMessage[]) => messages.map((m) => JSON.parse(`{"id":"${m.id}${m.body}`) as Record<string, unknown> & { id: string });

/** What MessageChanges and Moderation promise, with the broker's pages and appends that show and ask them (see changes.ts, moderation.ts). */
export function changesContract(name: string, makeHarness: () => Promise<ChangesHarness>): void {
  describe(`${name} (MessageChanges and Moderation contract)`, () => {
    let harness: ChangesHarness;
    let broker: Broker;
    let changes: MessageChanges;
    let listener: RecordingListener;

    beforeEach(async () => {
      harness = await makeHarness();
      ({ broker, changes } = harness.create());
      listener = new RecordingListener();
      broker.start(listener);
      await eventually(() => broker.up, 'broker up');
      await broker.subscribeRoom('r');
    });
    afterEach(async () => {
      await broker.close();
      await harness.cleanup();
    });

    it('stores an edit as an entry of its own, delivered in order, and shows the message edited in place', async () => {
      const first = await post(broker, 'r', 'alice', 'helo');
      const second = await post(broker, 'r', 'bob', 'hi');
      const change = await edit(changes, 'r', 'alice', first, 'hello');
      await eventually(() => listener.inRoom('r').length === 3, 'three deliveries');
      const delivered = listener.inRoom('r')[2]!;
      expect(delivered).toMatchObject({ id: change.id, prev: second });
      expect(JSON.parse(delivered.frame)).toMatchObject({ type: 'edit', id: change.id, target: first, user: 'alice', text: 'hello' });
      const page = parsed(await broker.history('r', undefined, 10));
      expect(page.map((m) => [m.id, m.text])).toEqual([[first, 'hello'], [second, 'hi']]);
      expect(page[0]!.edited).toEqual(expect.any(Number));
      const since = await broker.after('r', first, 10);
      expect(since.gap).toBeUndefined();
      expect(since.messages.map((m) => [m.id, m.change?.kind])).toEqual([[second, undefined], [change.id, 'edit']]);
    });

    it('refuses a change of what is not a message of the room the stream holds, and an edit by anyone but the author', async () => {
      // Ids are per room: the other room's message comes first, in a millisecond of its own, so no id of 'r' is its id.
      const elsewhere = await post(broker, 'other', 'alice', 'elsewhere');
      await new Promise((resolve) => setTimeout(resolve, 2));
      const old = await post(broker, 'r', 'alice', 'old');
      const mine = await post(broker, 'r', 'alice', 'mine');
      const reaction = await react(changes, 'r', 'bob', mine, 'heart');
      const refusal = (p: Promise<unknown>) => p.then(() => 'stored', (err: unknown) => (err instanceof ChangeRefusedError ? err.reason : String(err)));
      expect(await refusal(edit(changes, 'r', 'bob', mine, 'not yours'))).toBe('not_author');
      expect(await refusal(edit(changes, 'r', 'alice', elsewhere, 'wrong room'))).toBe('not_found');
      expect(await refusal(edit(changes, 'r', 'alice', reaction.id, 'a change'))).toBe('not_found');
      expect(await refusal(edit(changes, 'r', 'alice', '1-0', 'never was'))).toBe('not_found');
      await remove(changes, 'r', 'alice', mine);
      expect(await refusal(edit(changes, 'r', 'alice', mine, 'too late'))).toBe('gone');
      expect(await refusal(remove(changes, 'r', 'alice', mine))).toBe('gone');
      expect(await refusal(react(changes, 'r', 'bob', mine, 'heart'))).toBe('gone');
      for (let i = 0; i < HISTORY_SIZE * 2; i++) await post(broker, 'r', 'bob', `filler ${i}`);
      expect((await broker.after('r', old, 1000)).gap).toBe('trimmed');
      expect(await refusal(edit(changes, 'r', 'alice', old, 'trimmed'))).toBe('not_found');
      expect(await refusal(edit(changes, 'other', 'alice', elsewhere, 'still here'))).toBe('stored');
    });

    it('deletes a message everywhere a reader gets it: a tombstone in place, its edits gone, continuity kept from every id a reader saw', async () => {
      const first = await post(broker, 'r', 'alice', 'secret one');
      const fix = await edit(changes, 'r', 'alice', first, 'secret two');
      const second = await post(broker, 'r', 'bob', 'hi');
      await react(changes, 'r', 'bob', first, 'heart');
      const gone = await remove(changes, 'r', 'alice', first);
      const page = parsed(await broker.history('r', undefined, 10));
      expect(page).toEqual([
        { id: first, user: 'alice', text: '', ts: expect.any(Number), deleted: true },
        expect.objectContaining({ id: second, text: 'hi' }),
      ]);
      for (const from of ['0-0', first, fix.id]) {
        const range = await broker.after('r', from, 10);
        expect(range.gap, `after ${from}`).toBeUndefined();
        expect(range.messages.some((m) => m.body.includes('secret'))).toBe(false);
      }
      const all = await broker.after('r', '0-0', 10);
      expect(all.messages.map((m) => m.id)).toEqual([first, second, expect.any(String), gone.id]);
      expect(all.messages.at(-1)!.change).toMatchObject({ kind: 'delete', target: first, author: 'alice', sentAt: expect.any(Number) });
      if (harness.dump !== undefined) expect(await harness.dump()).not.toContain('secret');
    });

    it('lets a moderator delete what is not theirs: by the token, or named through the backend', async () => {
      const a = await post(broker, 'r', 'alice', 'one');
      const b = await post(broker, 'r', 'alice', 'two');
      await expect(remove(changes, 'r', 'mod', a)).rejects.toMatchObject({ reason: 'not_author' });
      await remove(changes, 'r', 'mod', a, true);
      await harness.moderation().setModerator('r', 'named', true);
      await remove(changes, 'r', 'named', b);
      expect(parsed(await broker.history('r', undefined, 10)).map((m) => m.deleted)).toEqual([true, true]);
      expect((await harness.moderation().of('r')).moderators).toEqual(['named']);
    });

    it('counts reactions as sets: racing adds and removes on two nodes leave the count equal to its reactors', async () => {
      const other = harness.create();
      other.broker.start(new RecordingListener());
      await eventually(() => other.broker.up, 'second broker up');
      try {
        const target = await post(broker, 'r', 'alice', 'react to me');
        const users = Array.from({ length: 50 }, (_, i) => `u${i}`);
        await Promise.all(users.flatMap((user, i) => {
          const node = i % 2 === 0 ? changes : other.changes;
          return [react(node, 'r', user, target, 'thumbsup'), react(i % 3 === 0 ? other.changes : changes, 'r', user, target, 'thumbsup', i % 5 !== 0)];
        }));
        // Each user's add and second call race; the reactor set alone decides. Reading it back must agree with every page.
        const page = parsed(await broker.history('r', undefined, 10, 'u1'));
        const count = (page[0]!.reactions as Record<string, number> | undefined)?.thumbsup ?? 0;
        const states = await Promise.all(users.map(async (user) => (await react(changes, 'r', user, target, 'thumbsup')).unchanged));
        expect(states.filter(Boolean)).toHaveLength(count);
        const after = parsed(await broker.history('r', undefined, 10, 'u1'))[0]!;
        expect(after.reactions).toEqual({ thumbsup: 50 });
        expect(after.mine).toEqual(['thumbsup']);
        expect(parsed(await broker.history('r', undefined, 10, 'nobody'))[0]!.mine).toBeUndefined();
      } finally {
        await other.broker.close();
      }
    });

    it('answers a reaction already as asked with unchanged, stores nothing, and never counts below zero', async () => {
      const target = await post(broker, 'r', 'alice', 'hi');
      expect(await react(changes, 'r', 'bob', target, 'heart', false)).toEqual({ id: target, unchanged: true });
      expect((await react(changes, 'r', 'bob', target, 'heart')).count).toBe(1);
      expect(await react(changes, 'r', 'bob', target, 'heart')).toEqual({ id: target, unchanged: true });
      expect((await react(changes, 'r', 'bob', target, 'heart', false)).count).toBe(0);
      expect(parsed(await broker.history('r', undefined, 10, 'bob'))[0]!.reactions).toBeUndefined();
      expect((await broker.after('r', target, 10)).messages.map((m) => m.change?.kind)).toEqual(['reaction', 'reaction']);
    });

    it('bounds the different reactions on one message', async () => {
      const target = await post(broker, 'r', 'alice', 'hi');
      for (let i = 0; i < 20; i++) await react(changes, 'r', 'bob', target, `r${i}`);
      await expect(react(changes, 'r', 'bob', target, 'one-more')).rejects.toMatchObject({ reason: 'too_many' });
      expect((await react(changes, 'r', 'carol', target, 'r0')).count).toBe(2);
    });

    it('erases every message of a user in a room, with their edits', async () => {
      const a = await post(broker, 'r', 'alice', 'private alpha');
      await edit(changes, 'r', 'alice', a, 'private beta');
      await post(broker, 'r', 'bob', 'keep me');
      const b = await post(broker, 'r', 'alice', 'private gamma');
      const erased = await changes.erase({ user: 'alice', rooms: ['r'], actor: 'system', ts: Date.now(), head: (room) => CHANGE_HEAD(room, 'delete') });
      expect(erased.map((e) => e.id)).toEqual([a, b]);
      expect(parsed(await broker.history('r', undefined, 10)).map((m) => m.text)).toEqual(['', 'keep me', '']);
      expect((await broker.after('r', '0-0', 100)).messages.some((m) => m.body.includes('private'))).toBe(false);
      if (harness.dump !== undefined) expect(await harness.dump()).not.toContain('private');
    });

    it('keeps a banned user from posting and a muted one from posting and reacting, with the reason, until lifted', async () => {
      const target = await post(broker, 'r', 'alice', 'hi');
      const moderation = harness.moderation();
      await moderation.restrict('r', 'spammer', { kind: 'ban', reason: 'spam' });
      await moderation.restrict('r', 'loud', { kind: 'mute', reason: 'calm down' });
      await expect(post(broker, 'r', 'spammer', 'buy')).rejects.toMatchObject({ kind: 'ban', reason: 'spam' });
      await expect(post(broker, 'r', 'loud', 'HEY')).rejects.toBeInstanceOf(RestrictedError);
      await expect(react(changes, 'r', 'loud', target, 'heart')).rejects.toMatchObject({ kind: 'mute', reason: 'calm down' });
      await expect(broker.presence.join('r', 'spammer')).rejects.toMatchObject({ kind: 'ban', reason: 'spam' });
      expect((await broker.presence.join('r', 'loud')).count).toBe(1);
      expect((await moderation.of('r')).restricted).toEqual([
        { user: 'loud', kind: 'mute', reason: 'calm down' }, { user: 'spammer', kind: 'ban', reason: 'spam' },
      ]);
      expect(await moderation.lift('r', 'loud', 'ban')).toBe(false);
      expect(await moderation.lift('r', 'loud', 'mute')).toBe(true);
      await post(broker, 'r', 'loud', 'sorry');
      await post(broker, 'other-room', 'spammer', 'the ban is per room');
    });

    it('takes a deleted message off the unread counts of those who had not read it, and off the room\'s preview; an edit or a reaction counts for nobody', async () => {
      await harness.membership().add('club', ['alice', 'bob', 'carol']);
      await broker.subscribeRoom('club');
      const reads = harness.readPositions();
      const one = await post(broker, 'club', 'alice', 'one');
      const two = await post(broker, 'club', 'alice', 'two');
      await reads.markRead('club', 'carol', two);
      const three = await post(broker, 'club', 'alice', 'three');
      expect(unreadOf((await reads.state('club', 'bob'))!)).toBe(3);
      await edit(changes, 'club', 'alice', one, 'one, edited');
      await react(changes, 'club', 'bob', one, 'heart');
      expect(unreadOf((await reads.state('club', 'bob'))!)).toBe(3);
      await remove(changes, 'club', 'alice', two);
      await eventually(() => listener.inRoom('club').some((m) => m.counted?.deletes === true), 'the counted delete');
      expect(listener.inRoom('club').filter((m) => m.counted !== undefined).map((m) => m.counted))
        .toEqual([{ number: 1, user: 'alice' }, { number: 2, user: 'alice' }, { number: 3, user: 'alice' }, { number: 2, user: 'alice', deletes: true }]);
      const bob = (await reads.state('club', 'bob'))!;
      expect([unreadOf(bob), bob.deleted]).toEqual([2, [2]]);
      expect(unreadOf((await reads.state('club', 'carol'))!)).toBe(1);
      expect(await reads.deletedAfter('club', 0)).toEqual([2]);
      await remove(changes, 'club', 'alice', three);
      const state = (await reads.state('club', 'carol'))!;
      expect([unreadOf(state), state.last?.id, JSON.parse(`{"id":"${state.last!.id}${state.last!.body}`).text]).toEqual([0, one, 'one, edited']);
      const read = await reads.markRead('club', 'bob', one);
      expect(unreadOf(read)).toBe(0);
    });

    it('refuses a non-member of a members-only room', async () => {
      const target = await post(broker, 'club', 'alice', 'open still');
      await harness.membership().add('club', ['alice']);
      await expect(react(changes, 'club', 'mallory', target, 'heart')).rejects.toBeInstanceOf(NotAMemberError);
    });
  });
}
