import type { ErrorFrame } from '@chat/protocol';

/** A request that failed: the server's `error` code, or what went wrong on the way. */
export class ChatRequestError extends Error {
  override readonly name = 'ChatRequestError';
  constructor(readonly code: ErrorFrame['code'] | 'disconnected' | 'timeout' | 'queue_full', message: string) {
    super(message);
  }
}
