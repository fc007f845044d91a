import type { ClientFrame, JoinedFrame, MessageFrame, ServerFrame } from '@chat/protocol';
import { expect, vi } from 'vitest';
import { ChatClient, type ChatClientOptions, type WebSocketLike } from '../src/index.js';

/**
 * A socket the test plays the server of. Frames reach the client only when the
 * test calls `push`, synchronously and back to back when given several, as
 * Node's `ws` hands over the frames of one read: no promise continuation runs
 * between them.
 */
export class FakeSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly sent: Array<ClientFrame & { ref?: string; key?: string }> = [];

  send(data: string): void {
    this.sent.push(JSON.parse(data) as ClientFrame);
  }

  close(code = 1000, reason = ''): void {
    this.drop(code, reason);
  }

  open(user: string): void {
    this.readyState = 1;
    this.onopen?.({});
    this.push({ type: 'welcome', user, connection: `c${Math.random()}`, node: 'fake' });
  }

  push(...frames: ServerFrame[]): void {
    for (const frame of frames) this.onmessage?.({ data: JSON.stringify(frame) });
  }

  drop(code = 1006, reason = ''): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** The last frame of `type` the client sent. */
  last<T extends ClientFrame['type']>(type: T): Extract<ClientFrame, { type: T }> & { ref: string; key?: string } {
    const frame = [...this.sent].reverse().find((f) => f.type === type);
    if (frame === undefined) throw new Error(`the client sent no ${type}`);
    return frame as never;
  }
}

export const message = (id: string, text = id): MessageFrame => ({ type: 'message', room: 'r', id, user: 'u', text, ts: 1 });

/** A client on fake sockets: `sockets` holds every one it opened, the newest last. */
export function fakeClient(options: Partial<ChatClientOptions> = {}) {
  const sockets: FakeSocket[] = [];
  const client = new ChatClient({
    url: 'ws://fake/ws', user: 'alice', backoffMinMs: 1, backoffMaxMs: 1, ...options,
    webSocket: () => {
      const socket = new FakeSocket();
      sockets.push(socket);
      return socket;
    },
  });
  const seen: string[] = [];
  client.on('message', (m) => seen.push(m.id));
  const socket = () => sockets.at(-1)!;
  /** Waits for the client to open another socket, connects it, and answers its rejoins with `joined` (no history). */
  const reconnect = async () => {
    const before = sockets.length;
    await vi.waitFor(() => expect(sockets.length).toBeGreaterThan(before));
    socket().open('alice');
    for (const room of client.rooms) {
      await vi.waitFor(() => expect(socket().sent.some((f) => f.type === 'join' && f.room === room)).toBe(true));
      const join = socket().last('join');
      socket().push({ type: 'joined', room, ref: join.ref, count: 1, members: ['alice'], history: [], recovered: true });
    }
  };
  return { client, sockets, socket, seen, reconnect };
}

/** Connects `fake` and joins `room`, answered by a `joined` of just alice, or with `fields` (count, members, limit...). */
export async function joined(fake: ReturnType<typeof fakeClient>, room = 'r', fields: Partial<JoinedFrame> = {}): Promise<void> {
  const connecting = fake.client.connect();
  await vi.waitFor(() => expect(fake.sockets).toHaveLength(1));
  fake.socket().open('alice');
  await connecting;
  const joining = fake.client.join(room);
  const join = fake.socket().last('join');
  fake.socket().push({ type: 'joined', room, ref: join.ref, count: 1, members: ['alice'], history: [], ...(join.since ? { recovered: true } : {}), ...fields });
  await joining;
}
