import { unreadOf, type Membership, type ReadPositions } from '@chat/broker';
import { messageFrameHead, type EncodedRoomEntry } from '@chat/protocol';
import { otherOf } from './direct-rooms.js';

export interface RoomListPage {
  rooms: EncodedRoomEntry[];
  next?: string;
}

interface Ranked {
  room: string;
  /** When its newest message was posted (µs), 0 for none. */
  activity: number;
}

/** Newest activity first, then by name, so every room has one place and a cursor names it. */
function byActivity(a: Ranked, b: Ranked): number {
  return b.activity - a.activity || (a.room < b.room ? -1 : a.room > b.room ? 1 : 0);
}

/** `<activity>~<room>`: where the page ended (see RoomsRequestFrame.before). */
const cursorOf = ({ activity, room }: Ranked): string => `${activity}~${room}`;

function parseCursor(cursor: string): Ranked {
  const tilde = cursor.indexOf('~');
  return { activity: Number(cursor.slice(0, tilde)), room: cursor.slice(tilde + 1) };
}

/**
 * A page of `user`'s members-only rooms, most recent activity first: one read
 * of the user's index, one small read per room for its activity, and one read
 * per listed room for its count, position and last message.
 */
export async function listRooms(
  { membership, reads }: { membership: Membership; reads: ReadPositions },
  user: string,
  before: string | undefined,
  limit: number,
): Promise<RoomListPage> {
  const names = await membership.roomsOf(user);
  const activity = await reads.activity(names);
  const ranked = names.map((room, i) => ({ room, activity: activity[i]! })).sort(byActivity);
  const after = before === undefined ? undefined : parseCursor(before);
  const start = after === undefined ? 0 : ranked.findIndex((r) => byActivity(r, after) > 0);
  const page = start < 0 ? [] : ranked.slice(start, start + limit);
  const states = await Promise.all(page.map((r) => reads.state(r.room, user)));
  const rooms: EncodedRoomEntry[] = [];
  const leftovers: string[] = [];
  page.forEach(({ room }, i) => {
    const state = states[i];
    if (state === undefined) {
      leftovers.push(room); // listed, but the room does not admit the user: see Membership.unlist
      return;
    }
    const last = state.last === null ? null : messageFrameHead(room) + state.last.id + state.last.body;
    rooms.push({ room, unread: unreadOf(state), read: state.read.id, last, ...(state.pair !== undefined && { with: otherOf(state.pair, user) }) });
  });
  if (leftovers.length > 0) await membership.unlist(user, leftovers);
  const more = start >= 0 && start + limit < ranked.length;
  return more ? { rooms, next: cursorOf(page.at(-1)!) } : { rooms };
}
