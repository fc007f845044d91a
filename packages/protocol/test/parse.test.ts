import { describe, expect, it } from 'vitest';
import { parseClientFrame, type FrameLimits, type ParseResult } from '../src/index.js';

const limits: FrameLimits = { maxFrameBytes: 1024, maxTextLength: 100 };
const parse = (raw: unknown, isBinary = false): ParseResult =>
  parseClientFrame(typeof raw === 'string' ? raw : JSON.stringify(raw), limits, isBinary);

function errorOf(result: ParseResult) {
  if (result.ok) throw new Error(`expected an error, got ${JSON.stringify(result.frame)}`);
  return result.error;
}

describe('parseClientFrame: valid frames', () => {
  it.each([
    [{ type: 'join', room: 'lobby' }],
    [{ type: 'join', room: 'a.b:c-d_E9', since: '1700000000000-3', ref: 'r1' }],
    [{ type: 'leave', room: 'lobby', ref: 'x' }],
    [{ type: 'send', room: 'lobby', text: 'hi', ref: 'r' }],
    [{ type: 'send', room: 'lobby', text: '' }],
    [{ type: 'dm', to: 'bob', text: 'psst' }],
    [{ type: 'send', room: 'lobby', text: 'once', key: 'k-1.a:B_9', ref: 'r' }],
    [{ type: 'dm', to: 'bob', text: 'once', key: 'x'.repeat(64) }],
    [{ type: 'typing', room: 'lobby' }],
    [{ type: 'history', room: 'lobby', before: '5-9', limit: 10, ref: 'h' }],
    [{ type: 'ping' }],
    [{ type: 'ping', ref: '' }],
    [{ type: 'members', room: 'lobby' }],
    [{ type: 'members', room: 'lobby', after: 'bob', limit: 1000, ref: 'm' }],
  ])('accepts %j', (frame) => {
    const result = parse(frame);
    expect(result).toEqual({ ok: true, frame });
  });

  it('ignores unknown fields', () => {
    expect(parse({ type: 'ping', ref: 'a', extra: [1, 2] })).toEqual({ ok: true, frame: { type: 'ping', ref: 'a' } });
  });

  it('caps history limit at 100', () => {
    expect(parse({ type: 'history', room: 'r', limit: 5000 })).toEqual({ ok: true, frame: { type: 'history', room: 'r', limit: 100 } });
  });

  it('caps members limit at 1000', () => {
    expect(parse({ type: 'members', room: 'r', limit: 1_000_000 })).toEqual({ ok: true, frame: { type: 'members', room: 'r', limit: 1000 } });
  });

  it('accepts bytes as well as strings', () => {
    const bytes = new TextEncoder().encode('{"type":"ping","ref":"é"}');
    expect(parseClientFrame(bytes, limits)).toEqual({ ok: true, frame: { type: 'ping', ref: 'é' } });
    expect(parseClientFrame(bytes.buffer as ArrayBuffer, limits)).toEqual({ ok: true, frame: { type: 'ping', ref: 'é' } });
  });
});

describe('parseClientFrame: every class of bad input has its code', () => {
  it.each([
    ['not JSON', 'hello'],
    ['truncated JSON', '{"type":"ping"'],
    ['empty frame', ''],
    ['a JSON array', '[1,2]'],
    ['a JSON string', '"ping"'],
    ['null', 'null'],
    ['a number', '42'],
  ])('%s is bad_request', (_label, raw) => {
    expect(errorOf(parse(raw)).code).toBe('bad_request');
  });

  it('a binary frame is bad_request even when it holds valid JSON', () => {
    expect(errorOf(parse({ type: 'ping' }, true)).code).toBe('bad_request');
  });

  it.each([
    [{ room: 'x' }],
    [{ type: 7 }],
    [{ type: 'shout', room: 'x' }],
    [{ type: 'constructor' }],
    [{ type: '__proto__' }],
    [{ type: 'toString' }],
    [{ type: 'hasOwnProperty' }],
  ])('missing or unknown type %j is bad_request', (frame) => {
    expect(errorOf(parse(frame)).code).toBe('bad_request');
  });

  it.each([
    ['missing room', { type: 'join' }],
    ['room not a string', { type: 'join', room: 5 }],
    ['empty room', { type: 'join', room: '' }],
    ['room of 65 characters', { type: 'join', room: 'a'.repeat(65) }],
    ['room with a space', { type: 'join', room: 'a b' }],
    ['room with a slash', { type: 'leave', room: 'a/b' }],
    ['room with non-ASCII', { type: 'join', room: 'café' }],
    ['since not an id', { type: 'join', room: 'r', since: 'yesterday' }],
    ['since missing its seq', { type: 'join', room: 'r', since: '5-' }],
    ['since with three parts', { type: 'join', room: 'r', since: '1-2-3' }],
    ['since negative', { type: 'join', room: 'r', since: '-1-0' }],
    ['since a number', { type: 'join', room: 'r', since: 5 }],
    ['since beyond 64 bits', { type: 'join', room: 'r', since: '18446744073709551616-0' }],
    ['send without text', { type: 'send', room: 'r' }],
    ['send with a number as text', { type: 'send', room: 'r', text: 5 }],
    ['send with an object as text', { type: 'send', room: 'r', text: { a: 1 } }],
    ['dm without to', { type: 'dm', text: 'x' }],
    ['dm to a malformed user', { type: 'dm', to: 'bob smith', text: 'x' }],
    ['send with an empty key', { type: 'send', room: 'r', text: 'x', key: '' }],
    ['send with a key of 65 characters', { type: 'send', room: 'r', text: 'x', key: 'k'.repeat(65) }],
    ['send with a key outside the name alphabet', { type: 'send', room: 'r', text: 'x', key: 'a b' }],
    ['send with a number as key', { type: 'send', room: 'r', text: 'x', key: 7 }],
    ['dm with a key outside the name alphabet', { type: 'dm', to: 'bob', text: 'x', key: 'ключ' }],
    ['history limit 0', { type: 'history', room: 'r', limit: 0 }],
    ['history limit negative', { type: 'history', room: 'r', limit: -5 }],
    ['history limit fractional', { type: 'history', room: 'r', limit: 1.5 }],
    ['history limit a string', { type: 'history', room: 'r', limit: '10' }],
    ['history before malformed', { type: 'history', room: 'r', before: 'latest' }],
    ['typing without room', { type: 'typing' }],
    ['members limit 0', { type: 'members', room: 'r', limit: 0 }],
    ['members limit fractional', { type: 'members', room: 'r', limit: 2.5 }],
    ['members after malformed', { type: 'members', room: 'r', after: 'no spaces' }],
    ['members after not a string', { type: 'members', room: 'r', after: 5 }],
    ['members without room', { type: 'members' }],
    ['ref not a string', { type: 'ping', ref: 12 }],
  ])('%s is bad_request', (_label, frame) => {
    expect(errorOf(parse(frame)).code).toBe('bad_request');
  });

  it('text longer than the maximum is payload_too_large', () => {
    expect(parse({ type: 'send', room: 'r', text: 'x'.repeat(100) }).ok).toBe(true);
    const error = errorOf(parse({ type: 'send', room: 'r', text: 'x'.repeat(101), ref: 'big' }));
    expect(error).toMatchObject({ code: 'payload_too_large', ref: 'big' });
    expect(error.close).toBeUndefined();
    expect(errorOf(parse({ type: 'dm', to: 'u', text: 'x'.repeat(101) })).code).toBe('payload_too_large');
  });

  it('a frame larger than the maximum asks for close 1009, counting bytes not characters', () => {
    const error = errorOf(parse('x'.repeat(1025)));
    expect(error).toMatchObject({ code: 'payload_too_large', close: 1009 });
    // 400 three-byte characters: 400 UTF-16 units but 1200 bytes.
    expect(errorOf(parse('€'.repeat(400))).close).toBe(1009);
    expect(errorOf(parseClientFrame(new Uint8Array(1025), limits)).close).toBe(1009);
  });
});

describe('parseClientFrame: ref echo on errors', () => {
  it('echoes a string ref whatever else is wrong', () => {
    expect(errorOf(parse({ type: 'nope', ref: 'a' })).ref).toBe('a');
    expect(errorOf(parse({ type: 'join', room: '!', ref: 'b' })).ref).toBe('b');
    expect(errorOf(parse({ type: 'history', room: 'r', limit: 0, ref: 'c' })).ref).toBe('c');
  });

  it('has no ref when the frame was not an object with a string ref', () => {
    expect(errorOf(parse('nonsense')).ref).toBeUndefined();
    expect(errorOf(parse({ type: 'nope', ref: 5 })).ref).toBeUndefined();
    expect('ref' in errorOf(parse({ type: 'nope' }))).toBe(false);
  });
});
