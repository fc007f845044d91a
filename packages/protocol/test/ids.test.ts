import { describe, expect, it } from 'vitest';
import { compareIds, isMessageId } from '../src/index.js';

describe('message ids', () => {
  it('compare numerically part by part', () => {
    expect(compareIds('5-10', '5-9')).toBeGreaterThan(0);
    expect(compareIds('5-9', '5-10')).toBeLessThan(0);
    expect(compareIds('10-0', '9-99')).toBeGreaterThan(0);
    expect(compareIds('1700000000000-0', '1700000000000-0')).toBe(0);
    expect(compareIds('007-1', '7-1')).toBe(0);
    expect(compareIds('18446744073709551615-0', '18446744073709551614-99')).toBeGreaterThan(0);
  });

  it('sort like numbers', () => {
    const ids = ['2-0', '10-1', '10-0', '1-20', '1-3', '100-0'];
    expect([...ids].sort(compareIds)).toEqual(['1-3', '1-20', '2-0', '10-0', '10-1', '100-0']);
  });

  it('are two unsigned 64-bit decimals', () => {
    expect(isMessageId('0-0')).toBe(true);
    expect(isMessageId('18446744073709551615-18446744073709551615')).toBe(true);
    expect(isMessageId('18446744073709551616-0')).toBe(false);
    expect(isMessageId('1')).toBe(false);
    expect(isMessageId('1-a')).toBe(false);
    expect(isMessageId(' 1-1')).toBe(false);
    expect(isMessageId(12)).toBe(false);
  });
});
