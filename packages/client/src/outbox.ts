import type { DirectSendFrame, ErrorFrame, OpenFrame, ReadFrame, SendFrame, ServerFrame } from './protocol.js';
import { ChatRequestError, failDisconnected } from './errors.js';

/**
 * A request that may go out more than once, as it goes out, with its ref: a
 * `send` or `dm` with the idempotency key that makes resending it safe, or an
 * `open` or `read`, which are safe by nature (the same pair always has the
 * same room; a read position never moves back).
 */
export type Outgoing = ((SendFrame | DirectSendFrame) & { key: string } | OpenFrame | ReadFrame) & { ref: string };

export interface OutboxOptions {
  /** Requests waiting for a connection, at most; more are refused at once (`queue_full`). */
  queueLimit: number;
  /** An attempt without an answer in this time fails with `timeout`. */
  requestTimeoutMs: number;
  /** A request refused as `unavailable` or `rate_limited` is tried again until this long after its first attempt. */
  retryForMs: number;
  /** Retry backoff: the first delay, and the cap; each delay is jittered. */
  retryMinMs: number;
  retryMaxMs: number;
}

interface Delivery {
  readonly frame: Outgoing;
  /** Order of the calls: what waits goes out in this order. */
  readonly seq: number;
  resolve(answer: ServerFrame): void;
  reject(err: Error): void;
  /** When the first attempt went out. */
  firstSentAt: number | undefined;
  retries: number;
  /** The attempt's answer timeout, or the retry's backoff. */
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Codes after which the same request may well succeed a little later. */
const RETRYABLE = new Set<ErrorFrame['code']>(['unavailable', 'rate_limited']);

/**
 * Requests safe to repeat, until their answer. Sends and direct messages carry
 * an idempotency key, so a resend can never store a message twice; `open` and
 * `read` change nothing the second time. One whose connection dropped before
 * its answer goes out again once the client is connected and has rejoined, and
 * one refused as temporarily impossible is retried with backoff. The server
 * answers every attempt of a key with the same ack, so each `send()` resolves
 * once, with the message's one id.
 */
export class Outbox {
  /** Waiting for a connection. */
  #waiting: Delivery[] = [];
  /** On the wire, by ref. */
  readonly #inFlight = new Map<string, Delivery>();
  /** Refused for now, waiting out a backoff. */
  readonly #backingOff = new Set<Delivery>();
  #write: ((frame: Outgoing) => void) | null = null;
  #seq = 0;

  constructor(private readonly options: OutboxOptions) {}

  /** Resolves with the answer (`ack`, `opened`, `unread`), rejects with an `error` that retrying cannot fix. */
  add(frame: Outgoing): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      if (this.#write === null && this.#waiting.length >= this.options.queueLimit) {
        reject(new ChatRequestError('queue_full', `${this.options.queueLimit} requests already wait for the connection`));
        return;
      }
      const delivery: Delivery = { frame, seq: ++this.#seq, resolve, reject, firstSentAt: undefined, retries: 0, timer: undefined };
      if (this.#write === null) this.#waiting.push(delivery);
      else this.#send(delivery);
    });
  }

  /** The connection is ready (and its rooms rejoined): everything waiting goes out, oldest first. */
  open(write: (frame: Outgoing) => void): void {
    this.#write = write;
    const waiting = this.#waiting.sort((a, b) => a.seq - b.seq);
    this.#waiting = [];
    for (const delivery of waiting) this.#send(delivery);
  }

  /** The connection is gone: what was on the wire or backing off waits for the next one, to be resent. */
  close(): void {
    this.#write = null;
    for (const delivery of [...this.#inFlight.values(), ...this.#backingOff]) {
      clearTimeout(delivery.timer);
      this.#waiting.push(delivery);
    }
    this.#inFlight.clear();
    this.#backingOff.clear();
  }

  /** Settles the delivery `ref` belongs to with its answer or `error`; false when `ref` is not one. */
  answer(ref: string, frame: ServerFrame): boolean {
    const delivery = this.#inFlight.get(ref);
    if (delivery === undefined) return false;
    this.#inFlight.delete(ref);
    clearTimeout(delivery.timer);
    if (frame.type !== 'error') delivery.resolve(frame);
    else if (!this.#retry(delivery, frame)) delivery.reject(new ChatRequestError(frame.code, frame.message));
    return true;
  }

  /** Fails every request not yet answered. */
  failAll(reason: string): void {
    const all = [...this.#waiting, ...this.#inFlight.values(), ...this.#backingOff];
    this.#waiting = [];
    this.#inFlight.clear();
    this.#backingOff.clear();
    failDisconnected(all, reason);
  }

  #send(delivery: Delivery): void {
    delivery.firstSentAt ??= Date.now();
    this.#inFlight.set(delivery.frame.ref, delivery);
    delivery.timer = setTimeout(() => {
      if (this.#inFlight.get(delivery.frame.ref) !== delivery) return;
      this.#inFlight.delete(delivery.frame.ref);
      delivery.reject(new ChatRequestError('timeout', `no answer within ${this.options.requestTimeoutMs} ms`));
    }, this.options.requestTimeoutMs);
    this.#write!(delivery.frame);
  }

  /** Schedules another attempt after a temporary refusal, within the retry budget; false when none is left. */
  #retry(delivery: Delivery, error: ErrorFrame): boolean {
    const { retryForMs, retryMinMs, retryMaxMs } = this.options;
    if (!RETRYABLE.has(error.code)) return false;
    const ceiling = Math.min(retryMaxMs, retryMinMs * 2 ** delivery.retries++);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    if (Date.now() + delay - delivery.firstSentAt! > retryForMs) return false;
    this.#backingOff.add(delivery);
    delivery.timer = setTimeout(() => {
      this.#backingOff.delete(delivery);
      if (this.#write === null) this.#waiting.push(delivery);
      else this.#send(delivery);
    }, delay);
    return true;
  }
}

/** A fresh idempotency key: 128 random bits, in the protocol's name alphabet. */
export function newKey(): string {
  const bytes = new Uint8Array(16);
  const crypto = (globalThis as { crypto?: { getRandomValues(b: Uint8Array): Uint8Array } }).crypto;
  if (crypto !== undefined) crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  let key = '';
  for (const b of bytes) key += b.toString(16).padStart(2, '0');
  return key;
}
