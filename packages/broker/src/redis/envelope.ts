import type { CountedMessage } from '../broker.js';
import type { PresenceChange } from '../presence.js';

/*
 * What travels on channels, private to brokers. Room channel:
 *   m|<id>|<prev>|<ts>|<frame>  a stored message and the id stored before it; they ride in front so no subscriber parses JSON
 *   n|<number>|<user>|<id>|<prev>|<ts>|<frame>  the same in a members-only room, with the message's number and sender
 *   x|<number>|<user>|<id>|<prev>|<ts>|<frame>  a change that deleted message <number> of a members-only room, by <user>
 *   p|+|<seq>|<count>|<user>, p|-|<seq>|<count>|<user>  a user arrived / left, the change's number and the
 *                        room's count after it (presence scripts; `p|+|<user>` from an older node carries neither)
 *   l|<id>                the stream lost delivered messages up to <id> (written by the mark script)
 *   e|<user>|<frame>      an ephemeral event about <user> (typing)
 * User channel:
 *   d|<frame>             a frame for every connection of the user
 *   c|<command>           a command for the nodes with a connection of the user (the gateway's to read)
 * Frames are forwarded to sockets as they are.
 */
const PIPE = 0x7c;
const M = 0x6d;
const N = 0x6e;
const X = 0x78;
const P = 0x70;
const E = 0x65;
const L = 0x6c;
const D = 0x64;
const C = 0x63;
const PLUS = 0x2b;

export type RoomPayload =
  | { kind: 'message'; id: string; prev: string; ts: number; frame: Uint8Array; counted?: CountedMessage }
  | { kind: 'presence'; change: PresenceChange }
  | { kind: 'event'; user: string; frame: Uint8Array }
  | { kind: 'loss'; upTo: string };

/** Returns null for a payload that is none of the known kinds. */
export function decodeRoomPayload(payload: Buffer): RoomPayload | null {
  if (payload[1] !== PIPE) return null;
  switch (payload[0]) {
    case M:
      return decodeMessage(payload, 2);
    case N:
    case X: {
      const numberEnd = payload.indexOf(PIPE, 2);
      const userEnd = numberEnd < 0 ? -1 : payload.indexOf(PIPE, numberEnd + 1);
      const message = userEnd < 0 ? null : decodeMessage(payload, userEnd + 1);
      if (message === null) return null;
      message.counted = { number: decimal(payload, 2, numberEnd), user: payload.toString('latin1', numberEnd + 1, userEnd) };
      if (payload[0] === X) message.counted.deletes = true;
      return message;
    }
    case P: {
      if (payload[3] !== PIPE) return null;
      const online = payload[2] === PLUS;
      const seqEnd = payload.indexOf(PIPE, 4);
      const countEnd = seqEnd < 0 ? -1 : payload.indexOf(PIPE, seqEnd + 1);
      if (countEnd < 0) return { kind: 'presence', change: { online, count: -1, seq: -1, user: payload.toString('latin1', 4) } };
      return { kind: 'presence', change: { online, seq: decimal(payload, 4, seqEnd), count: decimal(payload, seqEnd + 1, countEnd), user: payload.toString('latin1', countEnd + 1) } };
    }
    case L:
      return { kind: 'loss', upTo: payload.toString('latin1', 2) };
    case E: {
      const userEnd = payload.indexOf(PIPE, 2);
      if (userEnd < 0) return null;
      return { kind: 'event', user: payload.toString('latin1', 2, userEnd), frame: payload.subarray(userEnd + 1) };
    }
    default:
      return null;
  }
}

/** `<id>|<prev>|<ts>|<frame>` from `start` on. */
function decodeMessage(payload: Buffer, start: number): Extract<RoomPayload, { kind: 'message' }> | null {
  const idEnd = payload.indexOf(PIPE, start);
  const prevEnd = idEnd < 0 ? -1 : payload.indexOf(PIPE, idEnd + 1);
  if (prevEnd < 0) return null;
  let ts = 0;
  let i = prevEnd + 1;
  for (let c = payload[i]; c !== undefined && c !== PIPE; c = payload[++i]) ts = ts * 10 + (c - 48);
  if (i >= payload.length) return null;
  const id = payload.toString('latin1', start, idEnd);
  return { kind: 'message', id, prev: payload.toString('latin1', idEnd + 1, prevEnd), ts, frame: payload.subarray(i + 1) };
}

function decimal(bytes: Buffer, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) n = n * 10 + (bytes[i]! - 48);
  return n;
}

export function encodeRoomEvent(user: string, frame: string): string {
  return `e|${user}|${frame}`;
}

export type UserPayload = { kind: 'frame'; frame: Uint8Array } | { kind: 'command'; command: string };

/** What a user-channel payload carries, or null. */
export function decodeUserPayload(payload: Buffer): UserPayload | null {
  if (payload[1] !== PIPE) return null;
  if (payload[0] === D) return { kind: 'frame', frame: payload.subarray(2) };
  if (payload[0] === C) return { kind: 'command', command: payload.toString('utf8', 2) };
  return null;
}

export function encodeUserCommand(command: string): string {
  return `c|${command}`;
}

export function encodeUserPayload(frame: string): string {
  return `d|${frame}`;
}
