import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CLIENT_FRAME_TYPES,
  ERROR_CODES,
  HISTORY_MAX_LIMIT,
  NAME_PATTERN,
  parseClientFrame,
  type ClientFrame,
  type FrameLimits,
  type ParseResult,
} from '../src/index.js';

/**
 * Property-based tests of parseClientFrame: whatever arrives on a socket, the
 * parser answers with a result (never an exception) whose error code is one the
 * protocol knows, oversize frames always ask for 1009, every well-formed frame
 * comes back unchanged, and a string `ref` is always echoed on errors.
 */

const limits: FrameLimits = { maxFrameBytes: 64 * 1024, maxTextLength: 4096 };
const encoder = new TextEncoder();
const U64_MAX = 18446744073709551615n;
const RUNS = 500;

const utf8Length = (s: string): number => encoder.encode(s).byteLength;
/** No lone surrogate: the string survives UTF-8 unchanged (String#isWellFormed is ES2024). */
const isWellFormed = (s: string): boolean => new TextDecoder().decode(encoder.encode(s)) === s;

/** Checks what every result must satisfy, whatever the input. */
function expectWellFormedResult(result: ParseResult): void {
  expect(typeof result.ok).toBe('boolean');
  if (result.ok) {
    expect(CLIENT_FRAME_TYPES).toContain(result.frame.type);
    return;
  }
  expect(ERROR_CODES).toContain(result.error.code);
  expect(typeof result.error.message).toBe('string');
  if (result.error.close !== undefined) expect(result.error.close).toBe(1009);
  if ('ref' in result.error) expect(typeof result.error.ref).toBe('string');
}

function parseSafely(raw: string | Uint8Array, l: FrameLimits = limits, isBinary = false): ParseResult {
  let result: ParseResult | undefined;
  expect(() => {
    result = parseClientFrame(raw, l, isBinary);
  }).not.toThrow();
  expectWellFormedResult(result!);
  return result!;
}

// ---- arbitraries of well-formed frames ----------------------------------------

const name = fc.stringMatching(NAME_PATTERN);
const u64 = fc.bigInt({ min: 0n, max: U64_MAX });
/** `<ms>-<seq>`, mostly realistic, sometimes at the edges of 64 bits. */
const messageId = fc.oneof(
  fc.tuple(fc.nat(), fc.nat()).map(([ms, seq]) => `${ms}-${seq}`),
  fc.tuple(u64, u64).map(([ms, seq]) => `${ms}-${seq}`),
);
/** Any UTF-16 string (lone surrogates included) of at most maxTextLength units. */
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: limits.maxTextLength }),
  fc.constant('x'.repeat(limits.maxTextLength)),
  fc.constant('\u0000"\\\n'.repeat(limits.maxTextLength / 4)),
).filter((t) => t.length <= limits.maxTextLength);
const ref = fc.option(fc.string({ unit: 'binary', maxLength: 40 }), { nil: undefined });

/** Drops the keys whose value is undefined, as JSON.stringify does. */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const wellFormedFrame: fc.Arbitrary<ClientFrame> = fc.oneof(
  fc.record({ type: fc.constant('join' as const), room: name, since: fc.option(messageId, { nil: undefined }), ref }),
  fc.record({ type: fc.constant('leave' as const), room: name, ref }),
  fc.record({ type: fc.constant('send' as const), room: name, text, key: fc.option(name, { nil: undefined }), ref }),
  fc.record({ type: fc.constant('dm' as const), to: name, text, key: fc.option(name, { nil: undefined }), ref }),
  fc.record({ type: fc.constant('typing' as const), room: name, ref }),
  fc.record({
    type: fc.constant('history' as const),
    room: name,
    before: fc.option(messageId, { nil: undefined }),
    limit: fc.option(fc.oneof(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })), { nil: undefined }),
    ref,
  }),
  fc.record({ type: fc.constant('ping' as const), ref }),
).map((frame) => defined(frame) as ClientFrame);

/** What the parser must return for a well-formed frame: itself, with history's limit capped. */
function expected(frame: ClientFrame): ClientFrame {
  if (frame.type === 'history' && frame.limit !== undefined) return { ...frame, limit: Math.min(frame.limit, HISTORY_MAX_LIMIT) };
  return frame;
}

// ---- arbitraries of hostile input ---------------------------------------------

/** Frames that look like protocol frames but have any mix of right and wrong fields. */
const frameLike = fc.record(
  {
    type: fc.oneof(fc.constantFrom(...CLIENT_FRAME_TYPES), fc.constantFrom('__proto__', 'constructor', 'toString', 'Ping', ''), fc.jsonValue()),
    room: fc.oneof(name, fc.string({ unit: 'binary', maxLength: 80 }), fc.jsonValue()),
    to: fc.oneof(name, fc.string({ maxLength: 80 }), fc.jsonValue()),
    text: fc.oneof(fc.string({ unit: 'binary', maxLength: 100 }), fc.constant('y'.repeat(limits.maxTextLength + 1)), fc.jsonValue()),
    since: fc.oneof(messageId, fc.string({ maxLength: 30 }), fc.jsonValue(), fc.constant(`${U64_MAX + 1n}-0`)),
    before: fc.oneof(messageId, fc.string({ maxLength: 30 }), fc.jsonValue()),
    limit: fc.oneof(fc.integer(), fc.double(), fc.jsonValue()),
    ref: fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.jsonValue()),
  },
  { requiredKeys: [] },
);

const anyJson = fc.oneof(fc.jsonValue(), fc.object(), frameLike, fc.array(frameLike, { maxLength: 3 }));

describe('parseClientFrame: properties', () => {
  it('never throws on arbitrary strings and answers with a known error code', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme', maxLength: 500 }), fc.json()),
        fc.boolean(),
        (raw, isBinary) => {
          parseSafely(raw, limits, isBinary);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('never throws on arbitrary bytes, as text or binary frames', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc.json().map((j) => encoder.encode(j)),
          // Valid JSON with invalid UTF-8 spliced in.
          fc.tuple(fc.json(), fc.uint8Array({ minLength: 1, maxLength: 4 }).map((b) => b.map((x) => x | 0x80)))
            .map(([j, junk]) => Uint8Array.from([...encoder.encode(j.slice(0, 1)), ...junk, ...encoder.encode(j.slice(1))])),
        ),
        fc.boolean(),
        (raw, isBinary) => {
          const result = parseSafely(raw, limits, isBinary);
          if (isBinary) expect(result).toMatchObject({ ok: false, error: { code: 'bad_request' } });
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('never throws on arbitrary JSON values, and refuses everything but objects', () => {
    fc.assert(
      fc.property(anyJson, fc.boolean(), (value, asBytes) => {
        const json = JSON.stringify(value);
        const result = parseSafely(asBytes ? encoder.encode(json) : json);
        if (typeof value !== 'object' || value === null || Array.isArray(value)) {
          expect(result).toMatchObject({ ok: false, error: { code: 'bad_request' } });
        }
        if (result.ok) {
          // Anything accepted is a well-formed frame: it parses again to itself.
          expect(parseClientFrame(JSON.stringify(result.frame), limits)).toEqual(result);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('answers any frame over maxFrameBytes with payload_too_large and close 1009, counting UTF-8 bytes', () => {
    const oversize = fc.integer({ min: 16, max: 4096 }).chain((maxFrameBytes) =>
      fc.tuple(
        fc.constant(maxFrameBytes),
        fc.oneof(
          // ASCII (often valid JSON frames) padded past the limit.
          fc.tuple(wellFormedFrame, fc.integer({ min: 1, max: 2 * maxFrameBytes })).map(([frame, extra]) => {
            const json = JSON.stringify(frame);
            return json + ' '.repeat(Math.max(extra, maxFrameBytes + 1 - utf8Length(json)));
          }),
          // Multi-byte characters: fewer UTF-16 units than maxFrameBytes, more bytes.
          fc.tuple(fc.constantFrom('é', '€', '😀'), fc.integer({ min: 1, max: maxFrameBytes })).map(([ch, n]) => {
            const perChar = utf8Length(ch);
            return ch.repeat(Math.floor(maxFrameBytes / perChar) + n);
          }),
          fc.string({ unit: 'binary', minLength: maxFrameBytes + 1, maxLength: maxFrameBytes + 50 }),
          fc.integer({ min: maxFrameBytes + 1, max: maxFrameBytes * 3 }).map((n) => new Uint8Array(n).fill(0x7b)),
        ),
        fc.boolean(),
      ),
    );
    fc.assert(
      fc.property(oversize, ([maxFrameBytes, raw, isBinary]) => {
        const size = typeof raw === 'string' ? utf8Length(raw) : raw.byteLength;
        fc.pre(size > maxFrameBytes);
        const result = parseSafely(raw, { maxFrameBytes, maxTextLength: 1 }, isBinary);
        expect(result).toMatchObject({ ok: false, error: { code: 'payload_too_large', close: 1009 } });
      }),
      { numRuns: RUNS },
    );
  });

  it('never asks to close a frame within maxFrameBytes', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 2000 }), anyJson.map((v) => JSON.stringify(v))), fc.boolean(), (raw, isBinary) => {
        const maxFrameBytes = Math.max(16, utf8Length(raw));
        const result = parseSafely(raw, { maxFrameBytes, maxTextLength: limits.maxTextLength }, isBinary);
        if (!result.ok) expect(result.error.close).toBeUndefined();
      }),
      { numRuns: RUNS },
    );
  });

  it('parses every well-formed frame, as a string or as bytes, to the same object', () => {
    fc.assert(
      fc.property(wellFormedFrame, (frame) => {
        const json = JSON.stringify(frame);
        expect(utf8Length(json)).toBeLessThanOrEqual(limits.maxFrameBytes);
        expect(parseSafely(json)).toEqual({ ok: true, frame: expected(frame) });
      }),
      { numRuns: RUNS },
    );
    // As UTF-8 bytes (what uWS hands over), text and ref must be well-formed UTF-16.
    fc.assert(
      fc.property(wellFormedFrame, (frame) => {
        fc.pre(Object.values(frame).every((v) => typeof v !== 'string' || isWellFormed(v)));
        expect(parseSafely(encoder.encode(JSON.stringify(frame)))).toEqual({ ok: true, frame: expected(frame) });
      }),
      { numRuns: RUNS },
    );
  });

  it('ignores unknown fields on well-formed frames', () => {
    fc.assert(
      fc.property(wellFormedFrame, fc.dictionary(fc.string().filter((k) => !['type', 'room', 'to', 'text', 'key', 'since', 'before', 'limit', 'ref', '__proto__'].includes(k)), fc.jsonValue(), { maxKeys: 4 }), (frame, extra) => {
        expect(parseSafely(JSON.stringify({ ...extra, ...frame }))).toEqual({ ok: true, frame: expected(frame) });
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses text over maxTextLength with payload_too_large, without closing', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('send', 'dm'),
        name,
        fc.integer({ min: limits.maxTextLength + 1, max: limits.maxTextLength + 2000 }),
        fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
        ref,
        (type, target, length, ch, r) => {
          const t = ch.repeat(length).slice(0, length);
          const frame = defined(type === 'send' ? { type, room: target, text: t, ref: r } : { type, to: target, text: t, ref: r });
          const result = parseSafely(JSON.stringify(frame), { maxFrameBytes: 1024 * 1024, maxTextLength: limits.maxTextLength });
          expect(result).toEqual({ ok: false, error: defined({ code: 'payload_too_large', message: expect.any(String), ref: r }) });
        },
      ),
      { numRuns: 200 },
    );
  });

  it('echoes a string ref on every refusal of a JSON object, and no ref otherwise', () => {
    const objectWithRef = fc.tuple(fc.oneof(fc.object(), frameLike), fc.string({ unit: 'binary', maxLength: 40 }))
      .map(([o, r]) => ({ ...(o as Record<string, unknown>), ref: r }));
    fc.assert(
      fc.property(objectWithRef, fc.boolean(), (o, asBytes) => {
        const json = JSON.stringify(o);
        fc.pre(!asBytes || isWellFormed(o.ref as string));
        const result = parseSafely(asBytes ? encoder.encode(json) : json);
        if (!result.ok) expect(result.error.ref).toBe(o.ref);
        else expect(result.frame.ref).toBe(o.ref);
      }),
      { numRuns: RUNS },
    );
    const hasStringRef = (v: unknown): boolean =>
      typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as { ref?: unknown }).ref === 'string';
    const noStringRef = fc.oneof(
      fc.jsonValue().filter((v) => !hasStringRef(v)),
      fc.tuple(fc.oneof(fc.object(), frameLike), fc.option(fc.jsonValue().filter((v) => typeof v !== 'string'), { nil: undefined }))
        .map(([o, r]) => defined({ ...(o as Record<string, unknown>), ref: r })),
    );
    fc.assert(
      fc.property(noStringRef, (value) => {
        const result = parseSafely(JSON.stringify(value));
        if (!result.ok) expect('ref' in result.error).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });
});
