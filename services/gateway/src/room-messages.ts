import type { AppendResult, Broker } from '@chat/broker';
import { messageFrameBody } from '@chat/protocol';
import type { InFlight } from './in-flight.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { RoomRegistry } from './rooms/registry.js';

export interface RoomMessageDeps {
  broker: Broker;
  rooms: RoomRegistry;
  inFlight: InFlight;
  metrics: Metrics;
  log: Logger;
}

export interface RoomPost {
  room: string;
  user: string;
  text: string;
  /** The sender's idempotency key, if any. */
  key?: string;
}

/**
 * The one way a room message gets stored and published, for a client's `send`
 * and the publish API alike. The frame is built around the id once; the
 * append checks the idempotency key and the stream's continuity in the same
 * step; a repeat comes back with the first message's id and ts.
 */
export async function postRoomMessage(deps: RoomMessageDeps, { room, user, text, key }: RoomPost): Promise<AppendResult> {
  const { broker, rooms, inFlight, metrics, log } = deps;
  const ts = Date.now();
  const result = await inFlight.track(broker.append({
    room, user, head: rooms.head(room), body: messageFrameBody(user, text, ts), ts,
    lastDelivered: rooms.lastDelivered(room),
    idempotencyKey: key === undefined ? undefined : scopedKey(user, key),
  }));
  metrics.brokerPublishSeconds.observe((Date.now() - ts) / 1000);
  if (result.repeat) {
    metrics.repeatedSends.inc();
    log.debug({ room, user, key, id: result.id }, 'repeated send answered with the first one\'s ack');
  } else {
    metrics.messagesAccepted.inc();
  }
  return result;
}

/** An idempotency key belongs to its sender: `/` is outside the name alphabet, so no two (user, key) pairs meet. */
export function scopedKey(user: string, key: string): string {
  return `${user}/${key}`;
}
