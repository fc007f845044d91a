import type { EventRecording } from '../cluster-events.js';
import type { OfflineNotices } from '../offline-notices.js';
import type { MemoryHub } from './memory-broker.js';
import { MemoryEventRecorder } from './memory-events.js';

/** OfflineNotices of a single process: the hub's due rooms, and its users' connections. */
export class MemoryOfflineNotices implements OfflineNotices {
  readonly #recorder: MemoryEventRecorder;

  constructor(private readonly hub: MemoryHub, recording: EventRecording) {
    this.#recorder = new MemoryEventRecorder(hub.events, recording);
  }

  /** Nothing to hear: callers poll. */
  async listen(): Promise<void> {}

  /** Every due room is in the one map: nothing to find. */
  async sweep(): Promise<void> {}

  async claimDue(limit: number): Promise<string[]> {
    const now = Date.now();
    const claimed: string[] = [];
    for (const [room, dueAt] of this.hub.unreadDue) {
      if (claimed.length >= limit) break;
      if (dueAt > now) continue;
      this.hub.unreadDue.delete(room);
      claimed.push(room);
    }
    return claimed;
  }

  async notify(room: string, head: string): Promise<number> {
    const state = this.hub.room(room);
    const conversation = state.conversation;
    const newest = state.messages.at(-1);
    if (conversation === undefined || newest === undefined) return 0;
    let told = 0;
    for (const [user, read] of conversation.reads) {
      const unread = conversation.total - read.number;
      if (unread <= 0 || (this.hub.findUser(user)?.connections.size ?? 0) > 0) continue;
      const pair = conversation.pair?.split('|');
      const other = pair === undefined ? undefined : pair[0] === user ? pair[1] : pair[0];
      this.#recorder.record('member.unread', JSON.stringify({ room, user, unread, read: read.id, last: JSON.parse(head + newest.id + newest.body), ...(other !== undefined && { with: other }) }));
      told++;
    }
    return told;
  }
}
