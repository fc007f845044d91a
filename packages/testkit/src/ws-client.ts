import { parseServerFrame } from '@chat/protocol';
import WebSocket from 'ws';
import { ProtocolClient, type CloseInfo, type Outgoing } from './protocol-client.js';

export type { CloseInfo, WaitOptions } from './protocol-client.js';

/** A test client over a WebSocket (`/ws`). */
export class TestClient extends ProtocolClient {
  private constructor(readonly ws: WebSocket, label: string) {
    super(label);
    ws.on('message', (data, isBinary) => {
      const frame = isBinary ? null : parseServerFrame(data.toString());
      if (frame === null) throw new Error(`${label}: server sent a frame that is not a JSON object with a type`);
      this.received(frame);
    });
    ws.on('close', (code, reason) => this.closedWith({ code, reason: reason.toString() }));
    ws.on('error', (err) => {
      this.lastError = err; // surfaced through `closed` and wait failures
    });
  }

  /** Opens `url` (…/ws) as `user` and waits for `welcome`. */
  static async connect(url: string, user: string | null, { timeoutMs = 5000, query = '' } = {}): Promise<TestClient> {
    const sep = url.includes('?') ? '&' : '?';
    const full = user === null ? `${url}${query ? sep + query : ''}` : `${url}${sep}user=${encodeURIComponent(user)}${query ? `&${query}` : ''}`;
    const ws = new WebSocket(full);
    const client = new TestClient(ws, user ?? 'anonymous');
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (req, res) => {
        // With a listener here, ws leaves ending the refused request to us.
        req.destroy();
        reject(new HttpRefusal(res.statusCode ?? 0));
      });
      ws.once('error', reject);
    });
    await client.waitForWelcome(timeoutMs);
    return client;
  }

  send(frame: Outgoing | string | Buffer, binary = false): void {
    this.ws.send(typeof frame === 'object' && !Buffer.isBuffer(frame) ? JSON.stringify(frame) : frame, { binary });
  }

  close(code = 1000, reason = ''): Promise<CloseInfo> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
    return this.closed;
  }

  terminate(): Promise<CloseInfo> {
    this.ws.terminate();
    return this.closed;
  }
}

/** The upgrade was answered with an HTTP status instead of 101. */
export class HttpRefusal extends Error {
  override readonly name = 'HttpRefusal';
  constructor(readonly status: number) {
    super(`upgrade refused with HTTP ${status}`);
  }
}
