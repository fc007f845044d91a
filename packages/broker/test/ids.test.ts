import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_STREAM_ID, MIN_STREAM_ID, compareStreamIds } from '../src/ids.js';

const reference = (a: string, b: string): number => {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  return am! !== bm! ? (am! < bm! ? -1 : 1) : as! === bs! ? 0 : as! < bs! ? -1 : 1;
};

describe('compareStreamIds', () => {
  it('orders ids numerically, part by part, leading zeros or not', () => {
    expect(compareStreamIds('9-0', '10-0')).toBeLessThan(0);
    expect(compareStreamIds('5-10', '5-9')).toBeGreaterThan(0);
    expect(compareStreamIds('007-1', '7-1')).toBe(0);
    expect(compareStreamIds(MIN_STREAM_ID, MAX_STREAM_ID)).toBeLessThan(0);
    const part = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String), fc.nat(50).map((n) => `00${n}`));
    const id = fc.tuple(part, part).map(([ms, seq]) => `${ms}-${seq}`);
    fc.assert(fc.property(id, id, (a, b) => Math.sign(compareStreamIds(a, b)) === reference(a, b)));
  });
});
