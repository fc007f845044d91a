import { BrokerUnavailableError } from '../errors.js';

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
