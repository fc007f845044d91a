import type { ChangeResult, DeleteChange, EditChange, EraseRequest, ErasedMessage, MessageChanges, ReactionChange } from '../changes.js';
import { ChangeRefusedError, NotAMemberError, RestrictedError } from '../errors.js';
import type { MemoryBroker, MemoryHub } from './memory-broker.js';
import type { RoomChanges } from './room-changes.js';

/** How many different reactions one message may carry (as MAX_REACTIONS in Redis). */
const MAX_REACTIONS = 20;

function authorOf(body: string): string {
  return /^","user":"([^"]*)"/.exec(body)?.[1] ?? '';
}

function sentAtOf(body: string): string {
  return /,"ts":(\d+)}$/.exec(body)?.[1] ?? '0';
}

/** Changes of messages kept in a MemoryHub, stored and published through one node's broker. */
export class MemoryMessageChanges implements MessageChanges {
  constructor(private readonly hub: MemoryHub, private readonly broker: MemoryBroker) {}

  async edit(change: EditChange): Promise<ChangeResult> {
    const { body, changes } = this.#target(change, true);
    if (authorOf(body) !== change.user) throw new ChangeRefusedError('not_author');
    const id = this.broker.storeChange(change, change.body, { kind: 'edit', target: change.target });
    changes.bodies.set(change.target, `","user":"${change.user}","text":${change.text},"ts":${sentAtOf(body)},"edited":${change.ts}}`);
    changes.edits.set(change.target, [...(changes.edits.get(change.target) ?? []), id]);
    const now = changes.current({ id: change.target, body }, '')!;
    this.broker.recordEvent('message.updated', `{"room":${JSON.stringify(change.room)},"message":${change.messageHead}${change.target}${now.body},"change":${change.head}${id}${change.body}}`);
    return { id, unchanged: false };
  }

  async delete(change: DeleteChange): Promise<ChangeResult> {
    const { body, changes } = this.#target(change, false);
    const author = authorOf(body);
    if (author !== change.user && !change.moderator && !changes.moderators.has(change.user)) throw new ChangeRefusedError('not_author');
    const id = this.#bury(change, change.body, author, body);
    this.broker.recordEvent('message.deleted', `{"room":${JSON.stringify(change.room)},"author":"${author}","change":${change.head}${id}${change.body}}`);
    return { id, unchanged: false };
  }

  async react(change: ReactionChange): Promise<ChangeResult> {
    const { changes } = this.#target(change, true);
    let counts = changes.reactions.get(change.target);
    if (counts === undefined) changes.reactions.set(change.target, (counts = new Map()));
    let users = counts.get(change.reaction);
    if (users === undefined && change.add && counts.size >= MAX_REACTIONS) throw new ChangeRefusedError('too_many');
    if (change.add ? users?.has(change.user) === true : users?.has(change.user) !== true) return { id: change.target, unchanged: true };
    if (users === undefined) counts.set(change.reaction, (users = new Set()));
    if (change.add) users.add(change.user);
    else users.delete(change.user);
    const count = users.size;
    if (count === 0) counts.delete(change.reaction);
    const body = `","target":"${change.target}","user":"${change.user}","reaction":"${change.reaction}","op":"${change.add ? 'add' : 'remove'}","count":${count},"ts":${change.ts}}`;
    const id = this.broker.storeChange(change, body, { kind: 'reaction', target: change.target });
    return { id, unchanged: false, count };
  }

  async erase(request: EraseRequest): Promise<ErasedMessage[]> {
    const erased: ErasedMessage[] = [];
    for (const room of request.rooms ?? this.hub.roomNames()) {
      const state = this.hub.room(room);
      const mine = `","user":"${request.user}"`;
      const bodies = state.messages.filter((m) => m.change === undefined && m.body.startsWith(mine) && !state.changes.gone.has(m.id));
      for (const { id: target, body } of bodies) {
        const change = { room, user: request.actor, target, ts: request.ts, head: request.head(room) };
        this.#bury(change, `","target":"${target}","user":"${request.actor}","ts":${request.ts}}`, request.user, body);
        erased.push({ room, id: target, author: request.user, sentAt: Number(sentAtOf(body)) });
      }
    }
    return erased;
  }

  #bury(change: DeleteChange | { room: string; user: string; target: string; ts: number; head: string }, frameBody: string, author: string, body: string): string {
    const changes = this.hub.room(change.room).changes;
    for (const edit of changes.edits.get(change.target) ?? []) changes.removed.add(edit);
    changes.edits.delete(change.target);
    changes.reactions.delete(change.target);
    changes.gone.add(change.target);
    changes.bodies.set(change.target, `","user":"${author}","text":"","ts":${sentAtOf(body)},"deleted":true}`);
    this.hub.events.entries.splice(0, this.hub.events.entries.length, ...this.hub.events.entries.filter((e) => !e.body.includes(`"id":"${change.target}"`)));
    const conversation = this.hub.room(change.room).conversation;
    const number = conversation?.numbers.get(change.target);
    if (number !== undefined) conversation!.deleted.add(number);
    const stored = { kind: 'delete' as const, target: change.target, author, sentAt: Number(sentAtOf(body)) };
    return this.broker.storeChange(change, frameBody, stored, number === undefined ? undefined : { number, user: change.user, deletes: true });
  }

  /** The target's stored body, or the refusal; `posting`: a change a mute forbids. */
  #target(change: { room: string; user: string; target: string }, posting: boolean): { body: string; changes: RoomChanges } {
    this.broker.checkAvailable();
    const state = this.hub.room(change.room);
    if (!state.admits(change.user)) throw new NotAMemberError(change.room, change.user);
    const restriction = state.changes.restrictions.get(change.user);
    if (posting && restriction !== undefined) throw new RestrictedError(restriction.kind, restriction.reason);
    if (state.changes.gone.has(change.target)) throw new ChangeRefusedError('gone');
    const entry = state.messages.find((m) => m.id === change.target);
    if (entry === undefined || entry.change !== undefined || state.changes.removed.has(entry.id)) throw new ChangeRefusedError('not_found');
    return { body: entry.body, changes: state.changes };
  }
}
