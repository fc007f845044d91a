import type { ErrorFrame } from './protocol.js';

/** A request that failed: the server's `error` code, or what went wrong on the way. */
export class ChatRequestError extends Error {
  override readonly name = 'ChatRequestError';
  constructor(readonly code: ErrorFrame['code'] | 'disconnected' | 'timeout' | 'queue_full', message: string) {
    super(message);
  }
}

/** Something waiting for an answer: its timer, and how to fail it. */
export interface Waiting {
  timer: ReturnType<typeof setTimeout> | undefined;
  reject(error: Error): void;
}

/** Fails each of `waiting` as disconnected, with `reason`, and stops its timer. */
export function failDisconnected(waiting: Iterable<Waiting>, reason: string): void {
  for (const w of waiting) {
    clearTimeout(w.timer);
    w.reject(new ChatRequestError('disconnected', reason));
  }
}
