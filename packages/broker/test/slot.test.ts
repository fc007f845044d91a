import { describe, expect, it } from 'vitest';
import { keySlot } from '../src/redis/slot.js';

describe('keySlot', () => {
  it('matches CLUSTER KEYSLOT for plain keys', () => {
    expect(keySlot('foo')).toBe(12182);
    expect(keySlot('somekey')).toBe(11058);
  });

  it('hashes only the first non-empty hash tag, so a room\'s keys and channel share a slot', () => {
    expect(keySlot('chat:room:{lobby}:log')).toBe(keySlot('lobby'));
    expect(keySlot('chat:room:{lobby}')).toBe(keySlot('chat:room:{lobby}:node:gw-1.ab12'));
    expect(keySlot('a{}b')).not.toBe(keySlot(''));
    expect(keySlot('x{y}z{w}')).toBe(keySlot('y'));
    expect(keySlot('room:{général}')).toBe(keySlot('général'));
  });
});

describe('keySlot on the keys this service makes', () => {
  // cluster-key-slot (what ioredis routes with) differs from Redis on keys whose first
  // tag is empty and a later "}" follows ("a{}b}c"); REDIS_PREFIX refuses braces, so
  // every key made here has the room's own, non-empty tag first.
  it('puts every key and channel of a room on the slot of its name', () => {
    const room = 'lobby-42';
    for (const key of [`chat:room:{${room}}:log`, `app-1:room:{${room}}:lost`, `x:room:{${room}}`]) expect(keySlot(key)).toBe(keySlot(room));
  });
});
