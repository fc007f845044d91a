import type { MessageFrame, RoomEntry, UnreadFrame } from '@chat/protocol';
import { describe, expect, it, vi } from 'vitest';
import { fakeClient, type FakeSocket } from './fake-socket.js';

/*
 * open / read / listRooms and the unread total on a fake socket, where the
 * test decides which frame arrives when: the orders a real gateway can
 * produce (a page read before a message arriving after its frame, a read
 * made while disconnected, frames lost while away) are played on purpose.
 */

const msg = (room: string, id: string, user = 'bob'): MessageFrame => ({ type: 'message', room, id, user, text: `t${id}`, ts: Number(id.split('-')[0]) });
const entry = (room: string, unread: number, read: string, last: string | null, other?: string): RoomEntry =>
  ({ room, unread, read, last: last === null ? null : msg(room, last), ...(other !== undefined && { with: other }) });
const unread = (room: string, count: number, read: string, last?: string): UnreadFrame =>
  ({ type: 'unread', room, count, read, ...(last !== undefined && { last: msg(room, last) }) });

async function connected(options: Parameters<typeof fakeClient>[0] = {}) {
  const fake = fakeClient(options);
  const totals: number[] = [];
  const frames: UnreadFrame[] = [];
  fake.client.on('unreadTotal', (t) => totals.push(t));
  fake.client.on('unread', (f) => frames.push(f));
  const connecting = fake.client.connect();
  await vi.waitFor(() => expect(fake.sockets).toHaveLength(1));
  fake.socket().open('alice');
  await connecting;
  return { ...fake, totals, frames };
}

/** Answers the socket's last `rooms` request with `rooms` (and `next`). */
function answerRooms(socket: FakeSocket, rooms: RoomEntry[], next?: string): void {
  const request = socket.last('rooms');
  socket.push({ type: 'rooms', ref: request.ref, rooms, ...(next !== undefined && { next }) });
}

const roomsRequests = (socket: FakeSocket) => socket.sent.filter((f) => f.type === 'rooms');

describe('ChatClient: conversations', () => {
  it('opens a conversation, lists rooms, counts unread frames into the total, and reads', async () => {
    const fake = await connected();
    const opening = fake.client.open('bob');
    const open = fake.socket().last('open');
    expect(open).toMatchObject({ type: 'open', with: 'bob', ref: expect.any(String) });
    fake.socket().push({ type: 'opened', room: 'dm:ab', with: 'bob', ref: open.ref });
    await expect(opening).resolves.toBe('dm:ab');

    const listing = fake.client.listRooms({ limit: 2 });
    expect(fake.socket().last('rooms')).toMatchObject({ limit: 2 });
    answerRooms(fake.socket(), [entry('dm:ab', 2, '1-0', '3-0'), entry('team', 1, '1-0', '2-0')], '2~team');
    const page = await listing;
    expect(page.next).toBe('2~team');
    expect(fake.client.unreadTotal).toBe(3);
    expect(fake.client.unreadOf('dm:ab')).toEqual({ room: 'dm:ab', count: 2, read: '1-0', last: msg('dm:ab', '3-0'), with: 'bob' });

    // A new message in a room listed, and one in a room not listed yet: both count.
    fake.socket().push(unread('dm:ab', 3, '1-0', '4-0'), unread('other', 1, '0-0', '5-0'));
    expect(fake.client.unreadTotal).toBe(5);
    expect(fake.frames.map((f) => f.room)).toEqual(['dm:ab', 'other']);
    expect(fake.client.conversations().map((r) => r.room)).toEqual(['other', 'dm:ab', 'team']);

    const reading = fake.client.read('dm:ab', '4-0');
    const read = fake.socket().last('read');
    expect(read).toMatchObject({ room: 'dm:ab', id: '4-0' });
    fake.socket().push({ type: 'unread', room: 'dm:ab', count: 0, read: '4-0', ref: read.ref });
    await expect(reading).resolves.toEqual({ count: 0, read: '4-0' });
    expect(fake.client.unreadTotal).toBe(2);
    expect(fake.totals).toEqual([3, 4, 5, 2]);
    fake.client.close();
  });

  it('keeps the newer state when a page read before a message arrives after that message\'s frame', async () => {
    const fake = await connected();
    const listing = fake.client.listRooms();
    const request = fake.socket().last('rooms');
    // The message's frame first, then the page the gateway had read before it.
    fake.socket().push(unread('dm:ab', 2, '1-0', '3-0'));
    fake.socket().push({ type: 'rooms', ref: request.ref, rooms: [entry('dm:ab', 1, '1-0', '2-0'), entry('quiet', 0, '0-0', null)] });
    await listing;
    expect(fake.client.unreadOf('dm:ab')).toMatchObject({ count: 2, last: { id: '3-0' } });
    expect(fake.client.unreadTotal).toBe(2);
    // A read position behind the one kept is older too; the same position is taken (the later says it).
    fake.socket().push(unread('dm:ab', 5, '0-5', '3-0'));
    expect(fake.client.unreadOf('dm:ab')?.count).toBe(2);
    fake.socket().push(unread('dm:ab', 0, '3-0'));
    expect(fake.client.unreadOf('dm:ab')).toMatchObject({ count: 0, read: '3-0', last: { id: '3-0' } });
    expect(fake.frames.map((f) => f.count)).toEqual([2, 0]);
    expect(fake.totals).toEqual([2, 0]);

    // Another device read message 5-0 and its count came first; the message's own frame (counted from the
    // older position) comes after: the count stays that of the read, the newest message is taken for the preview.
    fake.socket().push(unread('dm:ab', 0, '5-0'), unread('dm:ab', 2, '3-0', '5-0'));
    expect(fake.client.unreadOf('dm:ab')).toMatchObject({ count: 0, read: '5-0', last: { id: '5-0' } });
    expect(fake.frames.slice(-2)).toEqual([unread('dm:ab', 0, '5-0'), unread('dm:ab', 0, '5-0', '5-0')]);
    expect(fake.totals).toEqual([2, 0]);
    fake.client.close();
  });

  it('sends a read made while disconnected once it is connected again, and one dropped before its answer again', async () => {
    const fake = await connected();
    const early = fake.client.read('dm:ab', '2-0');
    fake.socket().drop(); // before the answer
    const late = fake.client.read('dm:ab', '3-0'); // made while disconnected
    await fake.reconnect();
    await vi.waitFor(() => expect(fake.socket().sent.filter((f) => f.type === 'read')).toHaveLength(2));
    const [first, second] = fake.socket().sent.filter((f) => f.type === 'read') as Array<{ id: string; ref: string }>;
    expect([first!.id, second!.id]).toEqual(['2-0', '3-0']);
    fake.socket().push({ type: 'unread', room: 'dm:ab', count: 1, read: '2-0', ref: first!.ref }, { type: 'unread', room: 'dm:ab', count: 0, read: '3-0', ref: second!.ref });
    await expect(early).resolves.toEqual({ count: 1, read: '2-0' });
    await expect(late).resolves.toEqual({ count: 0, read: '3-0' });
    fake.client.close();
  });

  it('reads the room list again after a reconnect: counts missed while away, rooms that are gone, paging until every known room is seen', async () => {
    const fake = await connected();
    const listing = fake.client.listRooms();
    answerRooms(fake.socket(), [entry('a', 1, '1-0', '2-0'), entry('b', 2, '1-0', '3-0'), entry('c', 4, '1-0', '4-0')]);
    await listing;
    expect(fake.client.unreadTotal).toBe(7);
    const refreshes: boolean[] = [];
    fake.client.on('rooms', (_page, { refresh }) => refreshes.push(refresh));

    fake.socket().drop();
    await fake.reconnect();
    await vi.waitFor(() => expect(roomsRequests(fake.socket())).toHaveLength(1));
    expect(fake.socket().last('rooms')).toEqual({ type: 'rooms', limit: 100, ref: expect.any(String) });
    // While away: "b" got a message, "a" was read on another device; "c" is on the next page.
    answerRooms(fake.socket(), [entry('b', 3, '1-0', '5-0'), entry('new', 1, '0-0', '6-0'), entry('a', 0, '2-0', '2-0')], '1~a');
    await vi.waitFor(() => expect(roomsRequests(fake.socket())).toHaveLength(2));
    expect(fake.socket().last('rooms')).toMatchObject({ limit: 100, before: '1~a' });
    answerRooms(fake.socket(), [entry('c', 4, '1-0', '4-0')], '0~c');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(roomsRequests(fake.socket())).toHaveLength(2); // every known room seen: no third page
    expect(fake.client.unreadTotal).toBe(8);
    expect(refreshes).toEqual([true, true]);

    // Again, and this time the list ends without "c" (the backend removed the user) and without "late",
    // whose count came while the refresh was under way (a conversation opened meanwhile): "c" is forgotten.
    fake.socket().drop();
    await fake.reconnect();
    await vi.waitFor(() => expect(roomsRequests(fake.socket())).toHaveLength(1));
    fake.socket().push(unread('late', 2, '0-0', '7-0'));
    answerRooms(fake.socket(), [entry('b', 3, '1-0', '5-0'), entry('new', 1, '0-0', '6-0'), entry('a', 0, '2-0', '2-0')]);
    await vi.waitFor(() => expect(fake.client.unreadOf('c')).toBeUndefined());
    expect(fake.client.unreadOf('late')?.count).toBe(2);
    expect(fake.client.unreadTotal).toBe(6);
    expect(fake.totals.at(-1)).toBe(6);
    fake.client.close();
  });

  it('asks nothing of the room list when the application never used conversations', async () => {
    const fake = await connected();
    fake.socket().drop();
    await fake.reconnect();
    await vi.waitFor(() => expect(fake.client.state).toBe('connected'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(roomsRequests(fake.socket())).toEqual([]);
    fake.client.close();
  });

  it('forgets the count of a room the backend took the user out of', async () => {
    const fake = await connected();
    fake.socket().push(unread('dm:ab', 2, '1-0', '3-0'), unread('team', 1, '1-0', '2-0'));
    expect(fake.client.unreadTotal).toBe(3);
    fake.socket().push({ type: 'left', room: 'team' });
    expect(fake.client.unreadTotal).toBe(2);
    expect(fake.totals).toEqual([2, 3, 2]);
    fake.client.close();
  });

  it('fails open and read refused by the gateway, and retries them while it is unavailable', async () => {
    const fake = await connected();
    const opening = fake.client.open('mallory');
    fake.socket().push({ type: 'error', code: 'forbidden', message: 'no', ref: fake.socket().last('open').ref });
    await expect(opening).rejects.toMatchObject({ code: 'forbidden' });
    const reading = fake.client.read('dm:ab', '1-0');
    const first = fake.socket().last('read');
    fake.socket().push({ type: 'error', code: 'unavailable', message: 'broker down', ref: first.ref });
    await vi.waitFor(() => expect(fake.socket().sent.filter((f) => f.type === 'read')).toHaveLength(2), { timeout: 2000 });
    fake.socket().push({ type: 'unread', room: 'dm:ab', count: 0, read: '1-0', ref: fake.socket().last('read').ref });
    await expect(reading).resolves.toEqual({ count: 0, read: '1-0' });
    fake.client.close();
  });
});
