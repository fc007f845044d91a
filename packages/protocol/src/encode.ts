import type { ErrorCode } from './codes.js';
import type { ClientFrame, ServerFrame } from './frames.js';

/*
 * Server frames are built by hand where they are hot. A room message is split
 * around its id: `head + id + body`. The gateway builds head and body once,
 * the step that assigns the id splices it in, and every node forwards the
 * resulting bytes untouched.
 */

const q = JSON.stringify;

function refField(ref: string | undefined): string {
  return ref === undefined ? '' : `,"ref":${q(ref)}`;
}

export function messageFrameHead(room: string): string {
  return `{"type":"message","room":${q(room)},"id":"`;
}

export function messageFrameBody(user: string, text: string, ts: number): string {
  return `","user":${q(user)},"text":${q(text)},"ts":${ts}}`;
}

/**
 * A change (edit, delete, reaction) is stored and delivered like a message:
 * `head + id + body`, its id assigned where it is appended. The body starts
 * with the target, so a reader of the stored entry finds it in one place.
 */
export function changeFrameHead(room: string, type: 'edit' | 'delete' | 'reaction'): string {
  return `{"type":"${type}","room":${q(room)},"id":"`;
}

export function editFrameBody(target: string, user: string, text: string, ts: number): string {
  return `","target":${q(target)},"user":${q(user)},"text":${q(text)},"ts":${ts}}`;
}

export function deleteFrameBody(target: string, user: string, ts: number): string {
  return `","target":${q(target)},"user":${q(user)},"ts":${ts}}`;
}

export const DM_FRAME_HEAD = '{"type":"dm","id":"';

export function dmFrameBody(from: string, to: string, text: string, ts: number): string {
  return `","from":${q(from)},"to":${q(to)},"text":${q(text)},"ts":${ts}}`;
}

/**
 * `session`: an event stream's id, which its client's POSTs carry (fallback transport); none on a WebSocket.
 * `mod`: the room patterns the user moderates (added), when there are any.
 */
export function encodeWelcome(user: string, connection: string, node: string, session?: string, mod: readonly string[] = []): string {
  const stream = session === undefined ? '' : `,"session":${q(session)}`;
  const moderates = mod.length === 0 ? '' : `,"mod":${q(mod)}`;
  return `{"type":"welcome","user":${q(user)},"connection":${q(connection)},"node":${q(node)}${stream}${moderates}}`;
}

/** The last event of an event stream, where a WebSocket would get a close frame (fallback transport). */
export function encodeStreamClose(code: number, reason: string): string {
  return `{"type":"close","code":${code},"reason":${q(reason)}}`;
}

/** What a `joined` frame says about the room's users (see JoinedFrame). */
export interface JoinedUsers {
  count: number;
  members: readonly string[];
  /** The list limit L. */
  limit: number;
}

/** `history` holds already-encoded message frames, oldest first. */
export function encodeJoined(
  room: string,
  ref: string | undefined,
  users: JoinedUsers,
  history: readonly string[],
  recovered?: boolean,
  newest?: string,
): string {
  const rec = recovered === undefined ? '' : `,"recovered":${recovered}`;
  const at = newest === undefined ? '' : `,"newest":${q(newest)}`;
  return `{"type":"joined","room":${q(room)}${refField(ref)},"count":${users.count},"members":${q(users.members)},"limit":${users.limit},"history":[${history.join(',')}]${rec}${at}}`;
}

export function encodeLeft(room: string, ref: string | undefined): string {
  return `{"type":"left","room":${q(room)}${refField(ref)}}`;
}

export function encodeAck(ref: string | undefined, id: string, ts: number, unchanged = false): string {
  return `{"type":"ack"${refField(ref)},"id":${q(id)},"ts":${ts}${unchanged ? ',"unchanged":true' : ''}}`;
}

/** `messages` holds already-encoded message frames, oldest first. */
export function encodeHistory(room: string, ref: string | undefined, messages: readonly string[]): string {
  return `{"type":"history","room":${q(room)}${refField(ref)},"messages":[${messages.join(',')}]}`;
}

export function encodePong(ref: string | undefined, ts: number): string {
  return `{"type":"pong"${refField(ref)},"ts":${ts}}`;
}

export function encodeError(code: ErrorCode, message: string, ref?: string, reason?: string): string {
  const why = reason === undefined ? '' : `,"reason":${q(reason)}`;
  return `{"type":"error"${refField(ref)},"code":${q(code)},"message":${q(message)}${why}}`;
}

export function encodePresence(room: string, user: string, state: 'online' | 'offline'): string {
  return `{"type":"presence","room":${q(room)},"user":${q(user)},"state":"${state}"}`;
}

export function encodeMembers(room: string, ref: string | undefined, users: readonly string[], count: number, next: string | undefined): string {
  const after = next === undefined ? '' : `,"next":${q(next)}`;
  return `{"type":"members","room":${q(room)}${refField(ref)},"users":${q(users)},"count":${count}${after}}`;
}

export function encodeOccupancy(room: string, count: number): string {
  return `{"type":"occupancy","room":${q(room)},"count":${count}}`;
}

export function encodeTyping(room: string, user: string): string {
  return `{"type":"typing","room":${q(room)},"user":${q(user)}}`;
}

export function encodeOpened(room: string, other: string, ref: string | undefined): string {
  return `{"type":"opened","room":${q(room)},"with":${q(other)}${refField(ref)}}`;
}

/** `last`: an already-encoded message frame, when a new message changed the count. */
export function encodeUnread(room: string, count: number, read: string, last: string | undefined, ref: string | undefined): string {
  const message = last === undefined ? '' : `,"last":${last}`;
  return `{"type":"unread","room":${q(room)},"count":${count},"read":${q(read)}${message}${refField(ref)}}`;
}

/** One entry of a `rooms` page; `last` is an already-encoded message frame or null. */
export interface EncodedRoomEntry {
  room: string;
  unread: number;
  read: string;
  last: string | null;
  with?: string;
}

export function encodeRooms(ref: string | undefined, rooms: readonly EncodedRoomEntry[], next: string | undefined): string {
  const entries = rooms.map((r) => {
    const other = r.with === undefined ? '' : `,"with":${q(r.with)}`;
    return `{"room":${q(r.room)},"unread":${r.unread},"read":${q(r.read)},"last":${r.last ?? 'null'}${other}}`;
  });
  const more = next === undefined ? '' : `,"next":${q(next)}`;
  return `{"type":"rooms"${refField(ref)},"rooms":[${entries.join(',')}]${more}}`;
}

export function encodeClientFrame(frame: ClientFrame): string {
  return JSON.stringify(frame);
}

/**
 * Decodes a frame received from a gateway, for clients and the load generator.
 * Trusts the server for field shapes; returns null for anything that is not a
 * JSON object with a string `type`.
 */
export function parseServerFrame(data: string): ServerFrame | null {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || typeof (value as { type?: unknown }).type !== 'string') return null;
  return value as ServerFrame;
}
