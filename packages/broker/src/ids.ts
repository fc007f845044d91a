/** The first id after every possible stream id, and the id before every one. */
export const MAX_STREAM_ID = '18446744073709551615-18446744073709551615';
export const MIN_STREAM_ID = '0-0';
/** `(MAX_STREAM_ID` is not a valid range start in Redis; this one is, and nothing newer than it exists either. */
export const BEFORE_MAX_STREAM_ID = '18446744073709551615-18446744073709551614';

/**
 * Orders two stream ids `<ms>-<seq>` numerically, part by part: negative when
 * a < b, 0 when equal, positive when a > b. In place, without allocating: the
 * memory broker compares on every append. (The broker keeps its own: it moves
 * bytes and ids, and knows nothing of the protocol's frames.)
 */
export function compareStreamIds(a: string, b: string): number {
  if (a === b) return 0;
  const dashA = a.indexOf('-');
  const dashB = b.indexOf('-');
  return compareDecimals(a, 0, dashA, b, 0, dashB) || compareDecimals(a, dashA + 1, a.length, b, dashB + 1, b.length);
}

/** Two decimals given as ranges of strings, by value: leading zeros skipped, then length, then digits. */
function compareDecimals(a: string, from: number, to: number, b: string, bFrom: number, bTo: number): number {
  while (to - from > 1 && a.charCodeAt(from) === ZERO) from++;
  while (bTo - bFrom > 1 && b.charCodeAt(bFrom) === ZERO) bFrom++;
  const length = to - from;
  if (length !== bTo - bFrom) return length - (bTo - bFrom);
  for (let i = 0; i < length; i++) {
    const d = a.charCodeAt(from + i) - b.charCodeAt(bFrom + i);
    if (d !== 0) return d;
  }
  return 0;
}

const ZERO = 48;
