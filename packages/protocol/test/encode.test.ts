import { describe, expect, it } from 'vitest';
import {
  DM_FRAME_HEAD,
  dmFrameBody,
  encodeAck,
  encodeError,
  encodeHistory,
  encodeJoined,
  encodeMembers,
  encodeOccupancy,
  encodePresence,
  messageFrameBody,
  messageFrameHead,
  parseServerFrame,
} from '../src/index.js';

describe('server frame encoders', () => {
  it('splice a message id between head and body into a valid frame', () => {
    const text = 'quote " backslash \\ newline \n emoji 😀 nul \u0000 </script>';
    const frame = messageFrameHead('lobby') + '5-1' + messageFrameBody('alice', text, 1234);
    expect(JSON.parse(frame)).toEqual({ type: 'message', room: 'lobby', id: '5-1', user: 'alice', text, ts: 1234 });
  });

  it('build a dm frame the same way', () => {
    const frame = DM_FRAME_HEAD + '9-0' + dmFrameBody('a', 'b', 'hi', 7);
    expect(JSON.parse(frame)).toEqual({ type: 'dm', id: '9-0', from: 'a', to: 'b', text: 'hi', ts: 7 });
  });

  it('embed already-encoded messages in joined and history', () => {
    const m1 = messageFrameHead('r') + '1-0' + messageFrameBody('u', 'one', 1);
    const m2 = messageFrameHead('r') + '2-0' + messageFrameBody('u', 'two', 2);
    expect(JSON.parse(encodeJoined('r', 'j', { count: 2, members: ['u', 'v'], limit: 100 }, [m1, m2], false))).toEqual({
      type: 'joined', room: 'r', ref: 'j', count: 2, members: ['u', 'v'], limit: 100, history: [JSON.parse(m1), JSON.parse(m2)], recovered: false,
    });
    expect(JSON.parse(encodeJoined('r', undefined, { count: 0, members: [], limit: 20 }, []))).toEqual({ type: 'joined', room: 'r', count: 0, members: [], limit: 20, history: [] });
    expect(JSON.parse(encodeHistory('r', undefined, [m2]))).toEqual({ type: 'history', room: 'r', messages: [JSON.parse(m2)] });
  });

  it('omit ref when there is none and escape it when there is', () => {
    expect(JSON.parse(encodeAck(undefined, '1-0', 5))).toEqual({ type: 'ack', id: '1-0', ts: 5 });
    expect(JSON.parse(encodeError('forbidden', 'no "way"', 'r"1'))).toEqual({ type: 'error', ref: 'r"1', code: 'forbidden', message: 'no "way"' });
    expect(JSON.parse(encodePresence('r', 'u', 'offline'))).toEqual({ type: 'presence', room: 'r', user: 'u', state: 'offline' });
    expect(JSON.parse(encodeMembers('r', undefined, ['a', 'b'], 7, 'b'))).toEqual({ type: 'members', room: 'r', users: ['a', 'b'], count: 7, next: 'b' });
    expect(JSON.parse(encodeMembers('r', 'p"2', [], 0, undefined))).toEqual({ type: 'members', room: 'r', ref: 'p"2', users: [], count: 0 });
    expect(JSON.parse(encodeOccupancy('r', 5001))).toEqual({ type: 'occupancy', room: 'r', count: 5001 });
  });

  it('parseServerFrame rejects what is not a typed object', () => {
    expect(parseServerFrame('{"type":"pong","ts":1}')).toEqual({ type: 'pong', ts: 1 });
    expect(parseServerFrame('[1]')).toBeNull();
    expect(parseServerFrame('{"t":1}')).toBeNull();
    expect(parseServerFrame('nope')).toBeNull();
  });
});
