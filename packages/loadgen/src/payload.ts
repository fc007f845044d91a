/**
 * The send time, the sender and its sequence number travel at the start of each
 * message's text: `<ms>~<sender>~<seq>~<padding>`. Only digits, '.', '~' and
 * 'x', so the header reads back from the raw frame without JSON parsing.
 */
export interface Header {
  sentAt: number;
  sender: number;
  seq: number;
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export function makeText(sender: number, seq: number, size: number): string {
  const head = `${now().toFixed(3)}~${sender}~${seq}~`;
  return size > head.length ? head + 'x'.repeat(size - head.length) : head;
}

export function readHeader(text: string): Header | null {
  const a = text.indexOf('~');
  const b = text.indexOf('~', a + 1);
  const c = text.indexOf('~', b + 1);
  if (a < 0 || b < 0 || c < 0) return null;
  return { sentAt: Number(text.slice(0, a)), sender: Number(text.slice(a + 1, b)), seq: Number(text.slice(b + 1, c)) };
}
