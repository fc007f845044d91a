/** The first id after every possible stream id, and the id before every one. */
export const MAX_STREAM_ID = '18446744073709551615-18446744073709551615';
export const MIN_STREAM_ID = '0-0';
/** `(MAX_STREAM_ID` is not a valid range start in Redis; this one is, and nothing newer than it exists either. */
export const BEFORE_MAX_STREAM_ID = '18446744073709551615-18446744073709551614';

/**
 * Orders two stream ids `<ms>-<seq>` numerically, part by part: negative when
 * a < b, 0 when equal, positive when a > b. (The broker keeps its own: it moves
 * bytes and ids, and knows nothing of the protocol's frames.)
 */
export function compareStreamIds(a: string, b: string): number {
  if (a === b) return 0;
  const dashA = a.indexOf('-');
  const dashB = b.indexOf('-');
  return compareDecimals(a.slice(0, dashA), b.slice(0, dashB)) || compareDecimals(a.slice(dashA + 1), b.slice(dashB + 1));
}

function compareDecimals(a: string, b: string): number {
  const x = a.replace(LEADING_ZEROS, '');
  const y = b.replace(LEADING_ZEROS, '');
  return x.length - y.length || (x < y ? -1 : x > y ? 1 : 0);
}

const LEADING_ZEROS = /^0+(?=\d)/;
