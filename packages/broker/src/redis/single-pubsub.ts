import type { Redis } from 'ioredis';
import type { BrokerLog } from '../log.js';
import type { PubSub, PubSubEvents } from './pubsub.js';
import { whenReady } from './ready.js';
import { SubscriberConnection, serverOf, type ProbeSettings } from './subscriber-connection.js';

/** Plain pub/sub on one server: a standalone Redis, or the primary Sentinel points at. */
export class SinglePubSub implements PubSub {
  readonly publishCommand = 'PUBLISH';
  #connection: SubscriberConnection | undefined;

  constructor(
    private readonly subscriber: Redis,
    private readonly probeChannel: string,
    private readonly probe: ProbeSettings,
    private readonly log: BrokerLog,
  ) {}

  get live(): boolean {
    return this.#connection?.live ?? false;
  }

  get deafCount(): number {
    return this.#connection?.deaf === true ? 1 : 0;
  }

  get connectionCount(): number {
    return 1;
  }

  start(events: PubSubEvents): void {
    this.#connection = new SubscriberConnection(this.subscriber, 'subscribe', this.probeChannel, this.probe, {
      message: events.message,
      change: events.change,
      deaf: events.deaf,
      moved: () => {},
    }, this.log);
  }

  async subscribe(channel: string, waitMs: number): Promise<void> {
    await whenReady(this.subscriber, waitMs);
    await this.#connection!.add(channel);
  }

  async unsubscribe(channel: string): Promise<void> {
    await this.#connection?.remove(channel);
  }

  describe(): string {
    return `${serverOf(this.subscriber)} ${this.subscriber.status}${this.#connection?.deaf ? ' deaf' : ''}`;
  }

  async close(): Promise<void> {
    this.#connection?.close();
  }
}
