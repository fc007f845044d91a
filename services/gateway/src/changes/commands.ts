import type { MessageChanges } from '@chat/broker';
import {
  changeFrameHead, deleteFrameBody, editFrameBody, encodeAck, type DeleteFrame, type EditFrame, type ReactFrame,
} from '@chat/protocol';
import { allowedBy } from '../auth.js';
import type { InFlight } from '../in-flight.js';
import type { Metrics } from '../metrics.js';
import type { RoomRegistry } from '../rooms/registry.js';
import type { Session } from '../session.js';

export interface ChangeDeps {
  changes: MessageChanges;
  rooms: RoomRegistry;
  inFlight: InFlight;
  metrics: Metrics;
}

/**
 * `edit`, `delete`, `react` and `unreact` of a joined room's messages (see
 * docs/protocol.md, "Messages that change"). Who may change what is decided
 * where the change is stored, atomically with it; each is acknowledged with
 * the change's own id, and reaches members like a message.
 */
export class ChangeCommands {
  constructor(private readonly deps: ChangeDeps) {}

  async edit(session: Session, { room, target, text, ref }: EditFrame): Promise<void> {
    const ts = Date.now();
    const { id } = await this.deps.inFlight.track(this.deps.changes.edit({
      ...this.#common(session, room, target, ts, 'edit'),
      text: JSON.stringify(text), body: editFrameBody(target, session.user, text, ts), messageHead: this.deps.rooms.head(room),
    }));
    this.deps.metrics.messageChanges.incLabel('edit');
    session.send(encodeAck(ref, id, ts));
  }

  async delete(session: Session, { room, target, ref }: DeleteFrame): Promise<void> {
    const ts = Date.now();
    const { mod } = session.identity;
    const { id } = await this.deps.inFlight.track(this.deps.changes.delete({
      ...this.#common(session, room, target, ts, 'delete'),
      body: deleteFrameBody(target, session.user, ts), moderator: mod.length > 0 && allowedBy(mod, room),
    }));
    this.deps.metrics.messageChanges.incLabel('delete');
    session.send(encodeAck(ref, id, ts));
  }

  /** A reaction already as asked stores nothing and is acknowledged with the target's id, marked unchanged. */
  async react(session: Session, { type, room, target, reaction, ref }: ReactFrame): Promise<void> {
    const ts = Date.now();
    const { id, unchanged } = await this.deps.inFlight.track(this.deps.changes.react({
      ...this.#common(session, room, target, ts, 'reaction'), reaction, add: type === 'react',
    }));
    if (!unchanged) this.deps.metrics.messageChanges.incLabel('reaction');
    session.send(encodeAck(ref, id, ts, unchanged));
  }

  #common(session: Session, room: string, target: string, ts: number, kind: 'edit' | 'delete' | 'reaction') {
    return { room, user: session.user, target, ts, head: changeFrameHead(room, kind), lastDelivered: this.deps.rooms.lastDelivered(room) };
  }
}
