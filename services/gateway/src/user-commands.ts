import { CloseCode, isMessageId, isValidName } from '@chat/protocol';
import type { CommandHandler } from './commands.js';
import type { UnreadRelay } from './conversations/unread-relay.js';
import type { Logger } from './logger.js';
import type { UserRegistry } from './users.js';

/** What the server API asks of every node with a connection of the user (carried by Broker.sendUserCommand). */
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

function decodeUserCommand(raw: string): UserCommand | undefined {
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
    // fall through: logged below
  }
  return undefined;
}

/** Carries out user commands on this node's connections of the user. */
export class UserCommands {
  constructor(
    private readonly users: UserRegistry,
    private readonly commands: CommandHandler,
    private readonly unread: UnreadRelay,
    private readonly log: Logger,
  ) {}

  handle(user: string, raw: string): void {
    const command = decodeUserCommand(raw);
    if (command === undefined) {
      this.log.warn({ user, command: raw.slice(0, 200) }, 'ignored a malformed user command');
      return;
    }
    if (command.op === 'read') return this.unread.readMoved(user, command.room, command, command.total, command.except);
    if (command.op === 'member') return void this.unread.memberAdded(user, command.room);
    const sessions = [...this.users.sessionsOf(user)];
    this.log.info({ user, op: command.op, connections: sessions.length }, 'user command');
    if (command.op === 'unmember') this.unread.memberRemoved(user, command.room);
    for (const session of sessions) {
      if (command.op === 'disconnect') session.end(CloseCode.DISCONNECTED, command.reason);
      else if (command.op === 'join') this.commands.serverJoin(session, command.room);
      else this.commands.serverLeave(session, command.room);
    }
  }
}
