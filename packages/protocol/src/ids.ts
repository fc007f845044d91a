/**
 * Message ids are Redis-stream-style `<ms>-<seq>`, two unsigned 64-bit decimals,
 * compared numerically part by part.
 */
const ID_PATTERN = /^(\d{1,20})-(\d{1,20})$/;
const U64_MAX = 18446744073709551615n;

export function isMessageId(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const m = ID_PATTERN.exec(value);
  return m !== null && BigInt(m[1]!) <= U64_MAX && BigInt(m[2]!) <= U64_MAX;
}

/**
 * Orders two well-formed ids: negative when a < b, 0 when equal, positive when a > b.
 * Avoids BigInt on the common path: a decimal with fewer digits (no leading
 * zeros) is smaller, and equal-length decimals compare as strings.
 */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  const da = a.indexOf('-');
  const db = b.indexOf('-');
  // Runs per message on the relay path: compare in place unless a part has leading zeros.
  if (hasLeadingZero(a, 0, da) || hasLeadingZero(b, 0, db) || hasLeadingZero(a, da + 1, a.length) || hasLeadingZero(b, db + 1, b.length)) {
    const byMs = compareDecimal(a.slice(0, da), b.slice(0, db));
    return byMs !== 0 ? byMs : compareDecimal(a.slice(da + 1), b.slice(db + 1));
  }
  const byMs = compareRange(a, 0, da, b, 0, db);
  return byMs !== 0 ? byMs : compareRange(a, da + 1, a.length, b, db + 1, b.length);
}

function hasLeadingZero(s: string, start: number, end: number): boolean {
  return end - start > 1 && s.charCodeAt(start) === 48;
}

/** Compares two decimals without leading zeros, given as ranges of strings. */
function compareRange(a: string, as: number, ae: number, b: string, bs: number, be: number): number {
  if (ae - as !== be - bs) return ae - as - (be - bs);
  for (let i = 0; i < ae - as; i++) {
    const d = a.charCodeAt(as + i) - b.charCodeAt(bs + i);
    if (d !== 0) return d;
  }
  return 0;
}

function compareDecimal(a: string, b: string): number {
  a = stripZeros(a);
  b = stripZeros(b);
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

function stripZeros(s: string): string {
  let i = 0;
  while (i < s.length - 1 && s.charCodeAt(i) === 48) i++;
  return i === 0 ? s : s.slice(i);
}
