import { ReplyError } from 'ioredis';
import { BrokerCommandError, BrokerRefusal, BrokerUnavailableError } from '../errors.js';

/** What ioredis's Redis and Cluster share for connection state. */
export interface Connectable {
  readonly status: string;
  once(event: 'ready', listener: () => void): unknown;
  off(event: 'ready', listener: () => void): unknown;
}

/**
 * Waits for a connection that is (re)connecting, so calls ride out a start-up or a
 * short blip; fails as unavailable after `timeoutMs`. (ioredis's offline queue is
 * off on purpose: it could run a command after its caller was told it failed.)
 */
export function whenReady(redis: Connectable, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  if (redis.status === 'end') return Promise.reject(new BrokerUnavailableError('redis connection closed'));
  return new Promise((resolve, reject) => {
    const onReady = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new BrokerUnavailableError(`redis not reachable within ${timeoutMs} ms`));
    }, timeoutMs);
    redis.once('ready', onReady);
  });
}

/** Errors Redis answers while it cannot serve, as opposed to errors in the request. */
const TRANSIENT_REPLY = /^(LOADING|READONLY|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MOVED|ASK)\b/;

/** A command's failure as the broker reports it: unavailable (retry later) or a command error (do not). */
export function toBrokerError(err: unknown): Error {
  if (err instanceof BrokerUnavailableError || err instanceof BrokerCommandError || err instanceof BrokerRefusal) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof ReplyError && !TRANSIENT_REPLY.test(message)) {
    return new BrokerCommandError(message, { cause: err });
  }
  return new BrokerUnavailableError(message, { cause: err });
}

/** Runs a command once the connection is ready (see whenReady), reporting failures as broker errors. */
export async function callRedis<T>(redis: Connectable, waitMs: number, operation: () => Promise<T>): Promise<T> {
  try {
    await whenReady(redis, waitMs);
    return await operation();
  } catch (err) {
    throw toBrokerError(err);
  }
}
