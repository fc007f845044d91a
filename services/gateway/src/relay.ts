import type { BrokerListener, CountedMessage, PresenceChange } from '@chat/broker';
import type { ConversationRestorer } from './conversations/restorer.js';
import type { UnreadRelay } from './conversations/unread-relay.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { RoomRegistry } from './rooms/registry.js';
import type { SlowConsumerGuard } from './slow-consumers.js';
import type { UserCommands } from './user-commands.js';
import type { UserRegistry } from './users.js';
import type { PostRelay } from './transports/sse/post-relay.js';

/** About what a presence or occupancy frame takes, for the slow-consumer guard's count. */
const PRESENCE_FRAME_BYTES = 100;

/** Turns broker events into local room deliveries. */
export class Relay implements BrokerListener {
  #wasUp = false;
  #missedSomething = false;

  constructor(
    private readonly rooms: RoomRegistry,
    private readonly users: UserRegistry,
    private readonly userCommands: UserCommands,
    private readonly unread: UnreadRelay,
    private readonly posts: PostRelay,
    private readonly slowConsumers: SlowConsumerGuard,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    /** With the archive: checks, after every (re)connection, that Redis still holds its conversations. */
    private readonly restorer?: ConversationRestorer,
  ) {}

  onRoomMessage(room: string, id: string, ts: number, frame: Uint8Array, prev: string, counted?: CountedMessage): void {
    if (this.metrics.enabled) this.metrics.relayLatencySeconds.observe(Math.max(0, Date.now() - ts) / 1000);
    this.rooms.deliver(room, id, frame, prev);
    if (counted !== undefined) this.unread.messageArrived(room, id, frame, counted);
    this.slowConsumers.wrote(frame.byteLength);
  }

  onRoomLoss(room: string, upTo: string): void {
    this.rooms.lossReported(room, upTo);
  }

  onPresence(room: string, change: PresenceChange): void {
    this.rooms.presenceChanged(room, change);
    this.slowConsumers.wrote(PRESENCE_FRAME_BYTES);
  }

  onRoomEvent(room: string, user: string, frame: Uint8Array): void {
    this.rooms.deliverTyping(room, user, frame);
    this.slowConsumers.wrote(frame.byteLength);
  }

  onUserFrame(user: string, frame: Uint8Array): void {
    this.users.deliver(user, frame);
    this.slowConsumers.wrote(frame.byteLength);
  }

  onUserCommand(user: string, command: string): void {
    this.userCommands.handle(user, command);
  }

  onNodeMessage(payload: Uint8Array): void {
    this.posts.received(payload);
  }

  onStatus(up: boolean): void {
    if (up) this.restorer?.reconnected();
    if (!up) {
      this.#missedSomething = this.#wasUp || this.#missedSomething;
      return;
    }
    this.#wasUp = true;
    if (!this.#missedSomething) return;
    this.#missedSomething = false;
    this.metrics.brokerReconnects.inc();
    this.unread.forgetPositions();
    this.rooms.catchUpAll().catch((err: unknown) => this.log.error({ err }, 'catch-up failed'));
  }
}
