import { isMessageId, isValidName } from '@chat/protocol';

/** What the server API and the conversation commands ask of every node with a connection of the user (carried by Broker.sendUserCommand). */
export type UserCommand =
  | { op: 'disconnect'; reason: string }
  | { op: 'join'; room: string }
  | { op: 'leave'; room: string }
  /** The user became a member of members-only `room` (or was removed: the connections leave it too). */
  | { op: 'member' | 'unmember'; room: string }
  /** The user's read position in `room` moved; `except` is the connection already answered. */
  | { op: 'read'; room: string; id: string; number: number; total: number; except: string };

export function encodeUserCommand(command: UserCommand): string {
  return JSON.stringify(command);
}

export function decodeUserCommand(raw: string): UserCommand | undefined {
  try {
    const value = JSON.parse(raw) as Partial<Record<string, unknown>>;
    const { op, room } = value;
    if (op === 'disconnect' && typeof value.reason === 'string') return { op, reason: value.reason };
    if (!isValidName(room)) return undefined;
    if (op === 'join' || op === 'leave' || op === 'member' || op === 'unmember') return { op, room };
    const { id, number, total, except } = value;
    if (op === 'read' && isMessageId(id) && Number.isInteger(number) && Number.isInteger(total) && typeof except === 'string') {
      return { op, room, id, number: number as number, total: total as number, except };
    }
  } catch {
    // fall through: the caller logs what it could not read
  }
  return undefined;
}
