import { CloseCode, isValidName } from '@chat/protocol';
import type { CommandHandler } from './commands.js';
import type { Logger } from './logger.js';
import type { UserRegistry } from './users.js';

/** What the server API asks of every node with a connection of the user (carried by Broker.sendUserCommand). */
export type UserCommand =
  | { op: 'disconnect'; reason: string }
  | { op: 'join'; room: string }
  | { op: 'leave'; room: string };

export function encodeUserCommand(command: UserCommand): string {
  return JSON.stringify(command);
}

function decodeUserCommand(raw: string): UserCommand | undefined {
  try {
    const value = JSON.parse(raw) as Partial<UserCommand>;
    if (value.op === 'disconnect' && typeof value.reason === 'string') return { op: 'disconnect', reason: value.reason };
    if ((value.op === 'join' || value.op === 'leave') && typeof value.room === 'string' && isValidName(value.room)) return { op: value.op, room: value.room };
  } catch {
    // fall through: logged below
  }
  return undefined;
}

/** Carries out user commands on this node's connections of the user. */
export class UserCommands {
  constructor(private readonly users: UserRegistry, private readonly commands: CommandHandler, private readonly log: Logger) {}

  handle(user: string, raw: string): void {
    const command = decodeUserCommand(raw);
    if (command === undefined) {
      this.log.warn({ user, command: raw.slice(0, 200) }, 'ignored a malformed user command');
      return;
    }
    const sessions = [...this.users.sessionsOf(user)];
    this.log.info({ user, op: command.op, connections: sessions.length }, 'user command from the server API');
    for (const session of sessions) {
      if (command.op === 'disconnect') session.end(CloseCode.DISCONNECTED, command.reason);
      else if (command.op === 'join') this.commands.serverJoin(session, command.room);
      else this.commands.serverLeave(session, command.room);
    }
  }
}
