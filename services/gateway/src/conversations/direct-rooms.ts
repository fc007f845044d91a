import { createHash } from 'node:crypto';
import { pairOf } from '@chat/broker';

/** Rooms named so are direct conversations: only `open` makes one, and nobody joins one that is not. */
export const DIRECT_ROOM_PREFIX = 'dm:';

/**
 * The room of the direct conversation of `a` and `b`: the same in either order,
 * within the name alphabet and length whatever the ids, and never the room of
 * another pair (a digest of the pair, whose separator no id contains).
 */
export function directRoomName(a: string, b: string): string {
  return DIRECT_ROOM_PREFIX + createHash('sha256').update(pairOf(a, b)).digest('hex').slice(0, 40);
}

export function isDirectRoom(room: string): boolean {
  return room.startsWith(DIRECT_ROOM_PREFIX);
}

/** The other user of a direct conversation's pair ("a|b"). */
export function otherOf(pair: string, user: string): string {
  const bar = pair.indexOf('|');
  const first = pair.slice(0, bar);
  return first === user ? pair.slice(bar + 1) : first;
}
