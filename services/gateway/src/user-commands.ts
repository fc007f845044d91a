import { CloseCode } from '@chat/protocol';
import type { CommandHandler } from './commands.js';
import type { UnreadRelay } from './conversations/unread-relay.js';
import type { Logger } from './logger.js';
import { decodeUserCommand } from './user-command.js';
import type { UserRegistry } from './users.js';

export { encodeUserCommand, type UserCommand } from './user-command.js';

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
      else if (command.op === 'unmember') this.commands.memberRemoved(session, command.room);
      else this.commands.serverLeave(session, command.room);
    }
  }
}
