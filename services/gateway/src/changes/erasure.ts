import type { ErasedMessage, MessageChanges } from '@chat/broker';
import { changeFrameHead } from '@chat/protocol';

/** What an erasure needs of the archive (ArchiveStore). */
export interface ArchiveErasure {
  /** Tombstones for these messages, also ones the archiver has not written yet: a row written later keeps the tombstone. */
  tombstone(room: string, messages: ReadonlyArray<{ id: string; author: string; sentAt: number }>): Promise<unknown>;
  /** Every archived message of the user (in one room, or all) becomes a tombstone; resolves with how many. */
  eraseUser(user: string, room?: string): Promise<number>;
}

export interface ErasureResult {
  /** Messages the Redis streams held, now tombstones (a delete frame went to each room's members). */
  stream: number;
  /** Archived messages made tombstones (0 without an archive). */
  archive: number;
}

/**
 * Erases every message of `user` (in `room`, or everywhere): first in Redis,
 * where members get a delete for each and the streams stop holding the text;
 * then tombstones in the archive for exactly those, before a lagging archiver
 * can write them; then every older archived row of the user.
 */
export async function eraseUser(changes: MessageChanges, archive: ArchiveErasure | undefined, user: string, room?: string): Promise<ErasureResult> {
  const erased = await changes.erase({
    user, ...(room !== undefined && { rooms: [room] }), actor: 'system', ts: Date.now(), head: (r) => changeFrameHead(r, 'delete'),
  });
  if (archive === undefined) return { stream: erased.length, archive: 0 };
  for (const [name, messages] of byRoom(erased)) await archive.tombstone(name, messages);
  return { stream: erased.length, archive: await archive.eraseUser(user, room) };
}

function byRoom(erased: readonly ErasedMessage[]): Map<string, ErasedMessage[]> {
  const rooms = new Map<string, ErasedMessage[]>();
  for (const message of erased) {
    const list = rooms.get(message.room);
    if (list === undefined) rooms.set(message.room, [message]);
    else list.push(message);
  }
  return rooms;
}
