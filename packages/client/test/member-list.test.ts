import type { MembersFrame, PresenceFrame } from '@chat/protocol';
import { describe, expect, it, vi } from 'vitest';
import type { MemberList } from '../src/index.js';
import { fakeClient, joined } from './fake-socket.js';

/*
 * The count and member list the client keeps per room, as docs/protocol.md
 * ("What a client does at a crossing") says: complete and kept by presence
 * within the list limit L, a count carried by occupancy above it, and a list
 * read again from the start when the room comes back within L.
 */
const L = 100;
/** `n` user ids from u000 on (all after "alice" in id order). */
const users = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `u${String(from + i).padStart(3, '0')}`);
const online = (user: string, room = 'r'): PresenceFrame => ({ type: 'presence', room, user, state: 'online' });
const offline = (user: string, room = 'r'): PresenceFrame => ({ type: 'presence', room, user, state: 'offline' });

/** A client joined to `r` (`limit` null: a joined without one), with every `members` event it emitted. */
async function inRoom(count: number, members: string[], limit: number | null = L) {
  const fake = fakeClient();
  const lists: MemberList[] = [];
  fake.client.on('members', (list) => lists.push(list));
  await joined(fake, 'r', { count, members, ...(limit !== null && { limit }) });
  const memberRequests = () => fake.socket().sent.filter((f) => f.type === 'members');
  return { ...fake, lists, memberRequests };
}

describe('ChatClient: a room within the list limit', () => {
  it('takes the count and the complete list from joined, and tells the application with a members event', async () => {
    const fake = await inRoom(3, ['alice', 'bob', 'carol']);
    expect(fake.client.count('r')).toBe(3);
    expect(fake.client.memberList('r')).toEqual({ room: 'r', count: 3, limit: L, complete: true, users: ['alice', 'bob', 'carol'] });
    expect(fake.lists).toEqual([fake.client.memberList('r')]);
    expect(fake.client.count('elsewhere')).toBeUndefined();
    fake.client.close();
  });

  it('keeps the count with presence as set operations: a repeated online or an offline for someone not listed changes nothing', async () => {
    const fake = await inRoom(3, ['alice', 'bob', 'carol']);
    const counts: Array<number | undefined> = [];
    fake.client.on('presence', (p) => counts.push(fake.client.count(p.room)));
    fake.socket().push(online('dave'), online('dave'), offline('zed'), offline('bob'), offline('bob'));
    expect(counts).toEqual([4, 4, 4, 3, 3]);
    expect(fake.client.memberList('r')).toMatchObject({ count: 3, complete: true, users: ['alice', 'carol', 'dave'] });
    expect(fake.memberRequests()).toEqual([]);
    fake.client.close();
  });
});

describe('ChatClient: a room above the list limit', () => {
  it('takes joined above L as a sample with the count, and follows occupancy', async () => {
    const fake = await inRoom(250, ['alice', ...users(L - 1)]);
    expect(fake.client.memberList('r')).toMatchObject({ count: 250, complete: false });
    const seen: number[] = [];
    fake.client.on('occupancy', (o) => seen.push(fake.client.count(o.room)!));
    fake.socket().push({ type: 'occupancy', room: 'r', count: 260 }, { type: 'occupancy', room: 'r', count: 255 });
    expect(seen).toEqual([260, 255]);
    expect(fake.memberRequests()).toEqual([]);
    fake.client.close();
  });

  it('crossing up: takes the occupancy count and stops keeping the list (a members event says it is no longer complete)', async () => {
    const fake = await inRoom(L, ['alice', ...users(L - 1)]);
    expect(fake.client.memberList('r')!.complete).toBe(true);
    fake.socket().push({ type: 'occupancy', room: 'r', count: L + 1 });
    expect(fake.client.count('r')).toBe(L + 1);
    expect(fake.lists.at(-1)).toMatchObject({ count: L + 1, complete: false });
    expect(fake.lists).toHaveLength(2);
    fake.socket().push({ type: 'occupancy', room: 'r', count: L + 7 });
    expect(fake.client.count('r')).toBe(L + 7);
    expect(fake.lists).toHaveLength(2); // a count change above L is an occupancy event, not a new list
    expect(fake.memberRequests()).toEqual([]);
    fake.client.close();
  });

  it('crossing down: reads the list again from the start and replaces the stale one (a user who left above L is gone)', async () => {
    const fake = await inRoom(L + 1, ['alice', 'gone', ...users(L - 2)]);
    fake.socket().push({ type: 'occupancy', room: 'r', count: L });
    expect(fake.memberRequests()).toEqual([{ type: 'members', room: 'r', limit: L, ref: expect.any(String) }]);
    expect(fake.client.memberList('r')!.complete).toBe(false); // not before the page is in
    const fresh = ['alice', ...users(L - 1)];
    fake.socket().push({ type: 'members', room: 'r', ref: fake.socket().last('members').ref, users: fresh, count: L });
    expect(fake.client.memberList('r')).toEqual({ room: 'r', count: L, limit: L, complete: true, users: fresh });
    expect(fake.lists.at(-1)).toEqual(fake.client.memberList('r'));
    // Per-user presence from then on.
    fake.socket().push(offline('u000'));
    expect(fake.client.count('r')).toBe(L - 1);
    fake.client.close();
  });

  it('applies presence read while the re-read is in flight, and after it, to the new list', async () => {
    const fake = await inRoom(L + 1, ['alice', ...users(L - 1)]);
    fake.socket().push({ type: 'occupancy', room: 'r', count: L });
    const ref = fake.socket().last('members').ref;
    // Before the page: newbie arrived after the read, u005 left after it (the page still names it).
    fake.socket().push(online('newbie'), offline('u005'));
    const page: MembersFrame = { type: 'members', room: 'r', ref, users: ['alice', ...users(L - 1)], count: L };
    // After the page, in the same read (no promise continuation runs between them).
    fake.socket().push(page, offline('u010'));
    const list = fake.client.memberList('r')!;
    expect(list.complete).toBe(true);
    expect(list.users).toContain('newbie');
    expect(list.users).not.toContain('u005');
    expect(list.users).not.toContain('u010');
    expect(list.count).toBe(L - 1);
    expect(fake.lists.at(-1)!.users).toContain('newbie');
    fake.client.close();
  });

  it('drops a re-read overtaken by another crossing: only the latest one\'s answer counts', async () => {
    const fake = await inRoom(L + 1, ['alice', ...users(L - 1)]);
    fake.socket().push({ type: 'occupancy', room: 'r', count: L });
    const first = fake.socket().last('members').ref;
    fake.socket().push({ type: 'occupancy', room: 'r', count: L + 3 });
    expect(fake.client.memberList('r')).toMatchObject({ count: L + 3, complete: false });
    fake.socket().push({ type: 'occupancy', room: 'r', count: L - 1 });
    const second = fake.socket().last('members').ref;
    expect(second).not.toBe(first);
    fake.socket().push({ type: 'members', room: 'r', ref: first, users: ['alice', 'stale'], count: 2 });
    expect(fake.client.memberList('r')).toMatchObject({ count: L - 1, complete: false });
    const fresh = ['alice', ...users(L - 2)];
    fake.socket().push({ type: 'members', room: 'r', ref: second, users: fresh, count: L - 1 });
    expect(fake.client.memberList('r')).toMatchObject({ count: L - 1, complete: true, users: fresh });
    fake.client.close();
  });

  it('starts afresh from a joined the backend made during a re-read; that re-read\'s answer changes nothing', async () => {
    const fake = await inRoom(L + 1, ['alice', ...users(L - 1)]);
    fake.socket().push({ type: 'occupancy', room: 'r', count: L });
    const ref = fake.socket().last('members').ref;
    fake.socket().push({ type: 'joined', room: 'r', count: 2, members: ['alice', 'bob'], limit: L, history: [] });
    const events = fake.lists.length;
    fake.socket().push({ type: 'members', room: 'r', ref, users: ['alice', 'stale'], count: 2 });
    expect(fake.client.memberList('r')).toEqual({ room: 'r', count: 2, limit: L, complete: true, users: ['alice', 'bob'] });
    expect(fake.lists).toHaveLength(events);
    fake.client.close();
  });

  it('reads the list again on a presence while it holds a sample (a gateway that gave no limit)', async () => {
    const fake = await inRoom(30, ['alice', ...users(9)], null);
    expect(fake.client.memberList('r')).toMatchObject({ count: 30, complete: false, limit: undefined });
    fake.socket().push(offline('u001'));
    expect(fake.memberRequests()).toEqual([{ type: 'members', room: 'r', limit: 1000, ref: expect.any(String) }]);
    fake.socket().push({ type: 'members', room: 'r', ref: fake.socket().last('members').ref, users: ['alice', ...users(19)], count: 20 });
    expect(fake.client.memberList('r')).toMatchObject({ count: 19, complete: true });
    expect(fake.client.memberList('r')!.users).not.toContain('u001');
    fake.client.close();
  });
});

describe('ChatClient: paging and rejoins', () => {
  it('pages a room with members(): one request, answered by ref', async () => {
    const fake = await inRoom(500, ['alice', ...users(L - 1)]);
    const paging = fake.client.members('r', { after: 'u099', limit: 50 });
    const sent = fake.socket().last('members');
    expect(sent).toEqual({ type: 'members', room: 'r', after: 'u099', limit: 50, ref: expect.any(String) });
    const page: MembersFrame = { type: 'members', room: 'r', ref: sent.ref, users: users(50, 100), count: 500, next: 'u149' };
    fake.socket().push(page);
    await expect(paging).resolves.toEqual(page);
    expect(fake.client.memberList('r')!.users).toHaveLength(L); // a page the application asked for is its own
    fake.client.close();
  });

  it('starts afresh from the rejoin\'s joined after a reconnect: count, regime and list', async () => {
    const fake = await inRoom(L + 50, ['alice', 'gone', ...users(L - 2)]);
    fake.socket().push({ type: 'occupancy', room: 'r', count: L + 40 });
    fake.socket().drop();
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(2));
    fake.socket().open('alice');
    await vi.waitFor(() => expect(fake.socket().sent.some((f) => f.type === 'join')).toBe(true));
    fake.socket().push({ type: 'joined', room: 'r', ref: fake.socket().last('join').ref, count: 2, members: ['alice', 'bob'], limit: L, history: [], recovered: true });
    await vi.waitFor(() => expect(fake.client.state).toBe('connected'));
    expect(fake.client.memberList('r')).toEqual({ room: 'r', count: 2, limit: L, complete: true, users: ['alice', 'bob'] });
    expect(fake.lists.at(-1)).toEqual(fake.client.memberList('r'));
    fake.socket().push(online('carol'));
    expect(fake.client.count('r')).toBe(3);
    fake.client.close();
  });

  it('forgets a room it left', async () => {
    const fake = await inRoom(3, ['alice', 'bob', 'carol']);
    fake.socket().push({ type: 'left', room: 'r' });
    expect(fake.client.count('r')).toBeUndefined();
    expect(fake.client.memberList('r')).toBeUndefined();
    fake.client.close();
  });
});
