import { generateKeyPair, exportSPKI, SignJWT, UnsecuredJWT } from 'jose';
import { HttpRefusal, sleep, TestClient, uniquePrefix, waitFor } from '@chat/testkit';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startGateway, type GatewayProcess } from './helpers/gateways.js';

const SECRET = 'a-test-secret-that-is-at-least-32-characters-long';
const now = () => Math.floor(Date.now() / 1000);
const hs256 = (claims: Record<string, unknown>, secret = SECRET) => {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' });
  return jwt.sign(new TextEncoder().encode(secret));
};

/** Opens /ws with a raw query: the client, or the HTTP status when the upgrade is refused. */
async function upgrade(gateway: GatewayProcess, query: string): Promise<number | TestClient> {
  try {
    return await TestClient.connect(`${gateway.wsUrl}${query}`, null);
  } catch (err) {
    if (err instanceof HttpRefusal) return err.status;
    throw err;
  }
}

function statusWithHeaders(gateway: GatewayProcess, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${gateway.wsUrl}${path}`, { headers });
    ws.once('open', () => { ws.terminate(); resolve(101); });
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', reject);
  });
}

describe('authentication with an HS256 secret', () => {
  let gateway: GatewayProcess;
  beforeAll(async () => {
    gateway = await startGateway({ REDIS_URL: inject('redisUrl'), REDIS_PREFIX: uniquePrefix('sec'), JWT_SECRET: SECRET, MAX_CONNECTIONS_PER_USER: '2' });
  });
  afterAll(async () => {
    await gateway.stop();
  });

  it('accepts a valid token, as ?token= or Authorization: Bearer, with sub as the user', async () => {
    const token = await hs256({ sub: 'alice', exp: now() + 60 });
    const client = await upgrade(gateway, `?token=${token}`);
    expect(client).toBeInstanceOf(TestClient);
    expect((client as TestClient).welcome.user).toBe('alice');
    await (client as TestClient).close();
    expect(await statusWithHeaders(gateway, '', { Authorization: `Bearer ${token}` })).toBe(101);
  });

  it.each([
    ['expired', async () => hs256({ sub: 'a', exp: now() - 10 })],
    ['not yet valid', async () => hs256({ sub: 'a', nbf: now() + 600, exp: now() + 900 })],
    ['signed with another secret', async () => hs256({ sub: 'a', exp: now() + 60 }, 'another-secret-that-is-also-32-characters-long!!')],
    ['alg none', async () => new UnsecuredJWT({ sub: 'a', exp: now() + 60 }).encode()],
    ['a malformed sub', async () => hs256({ sub: 'has space', exp: now() + 60 })],
    ['garbage', async () => 'not.a.token'],
  ])('refuses a token that is %s with 401 before the upgrade', async (_label, make) => {
    expect(await upgrade(gateway, `?token=${await make()}`)).toBe(401);
  });

  it('refuses a missing token, and ?user= while a key is configured', async () => {
    expect(await upgrade(gateway, '')).toBe(401);
    expect(await upgrade(gateway, '?user=mallory')).toBe(401);
    expect(await (await fetch(`${gateway.httpUrl}/readyz`)).json()).toMatchObject({ devIdentity: false });
  });

  it('closes a connection with 1008 when its token expires', async () => {
    const client = (await upgrade(gateway, `?token=${await hs256({ sub: 'brief', exp: now() + 2 })}`)) as TestClient;
    expect((await client.closed).code).toBe(1008);
  });

  it('limits connections per user', async () => {
    const token = await hs256({ sub: 'many', exp: now() + 60 });
    const first = (await upgrade(gateway, `?token=${token}`)) as TestClient;
    const second = (await upgrade(gateway, `?token=${token}`)) as TestClient;
    expect(await upgrade(gateway, `?token=${token}`)).toBe(429);
    await first.close();
    await sleep(50);
    const again = (await upgrade(gateway, `?token=${token}`)) as TestClient;
    await Promise.all([second.close(), again.close()]);
  });

  it('limits direct messages to the users of the token\'s dm claim', async () => {
    const bob = (await upgrade(gateway, `?token=${await hs256({ sub: 'bob', exp: now() + 60 })}`)) as TestClient;
    const carol = (await upgrade(gateway, `?token=${await hs256({ sub: 'carol', exp: now() + 60 })}`)) as TestClient;
    const limited = (await upgrade(gateway, `?token=${await hs256({ sub: 'dan', exp: now() + 60, dm: ['bob', 'support-*'] })}`)) as TestClient;
    expect(await limited.request({ type: 'dm', to: 'bob', text: 'allowed' })).toMatchObject({ type: 'ack' });
    expect(await limited.request({ type: 'dm', to: 'carol', text: 'not allowed' })).toMatchObject({ type: 'error', code: 'forbidden' });
    await bob.waitFor((f) => f.type === 'dm' && f.text === 'allowed');
    expect(carol.ofType('dm')).toEqual([]);
    await Promise.all([bob.close(), carol.close(), limited.close()]);
  });

  it('limits rooms to the token\'s rooms claim for join, history and send', async () => {
    const client = (await upgrade(gateway, `?token=${await hs256({ sub: 'scoped', exp: now() + 60, rooms: ['team-*', 'lobby'] })}`)) as TestClient;
    expect(await client.request({ type: 'join', room: 'team-blue' })).toMatchObject({ type: 'joined' });
    expect(await client.request({ type: 'join', room: 'lobby' })).toMatchObject({ type: 'joined' });
    for (const frame of [
      { type: 'join', room: 'secret' }, { type: 'history', room: 'secret' }, { type: 'send', room: 'secret', text: 'hi' }, { type: 'join', room: 'lobby2' },
    ]) {
      expect(await client.request(frame), JSON.stringify(frame)).toMatchObject({ type: 'error', code: 'forbidden' });
    }
    await client.close();
  });
});

describe('authentication with an ES256 public key', () => {
  it('accepts tokens signed by the private key only', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const pem = await exportSPKI(publicKey);
    const gateway = await startGateway({ REDIS_URL: inject('redisUrl'), JWT_PUBLIC_KEY: pem, DMS_ENABLED: 'false', DEV_IDENTITY: 'on' });
    try {
      const good = await new SignJWT({ sub: 'erin' }).setProtectedHeader({ alg: 'ES256' }).setExpirationTime('1m').sign(privateKey);
      const client = (await upgrade(gateway, `?token=${good}`)) as TestClient;
      expect(client.welcome.user).toBe('erin');
      // The public key used as an HMAC secret: the classic algorithm confusion.
      const confused = await hs256({ sub: 'erin', exp: now() + 60 }, pem);
      expect(await upgrade(gateway, `?token=${confused}`)).toBe(401);
      // DMs disabled by config.
      expect(await client.request({ type: 'dm', to: 'erin', text: 'x' })).toMatchObject({ type: 'error', code: 'forbidden' });
      // Development identities explicitly on beside a key: accepted, and visible.
      expect(await upgrade(gateway, '?user=dev')).toBeInstanceOf(TestClient);
      expect(await (await fetch(`${gateway.httpUrl}/readyz`)).json()).toMatchObject({ devIdentity: true });
      expect(gateway.logs.some((l) => l.level === 40 && String(l.msg).includes('DEVELOPMENT IDENTITIES ARE ON'))).toBe(true);
      expect(await (await fetch(`${gateway.httpUrl}/metrics`)).text()).toContain('chat_dev_identity_enabled 1');
      await client.close();
    } finally {
      await gateway.stop();
    }
  });
});

describe('origins and addresses', () => {
  let gateway: GatewayProcess;
  beforeAll(async () => {
    gateway = await startGateway({
      REDIS_URL: inject('redisUrl'), ALLOWED_ORIGINS: 'https://chat.example.com', MAX_CONNECTIONS_PER_IP: '2', TRUSTED_PROXIES: '10.0.0.1',
    });
  });
  afterAll(async () => {
    await gateway.stop();
  });

  it('refuses browser upgrades from origins not on the allow-list', async () => {
    expect(await statusWithHeaders(gateway, '?user=o1', { Origin: 'https://evil.example' })).toBe(403);
    expect(await statusWithHeaders(gateway, '?user=o2', { Origin: 'https://chat.example.com' })).toBe(101);
  });

  it('limits connections per address, and ignores X-Forwarded-For from untrusted peers', async () => {
    const open: WebSocket[] = [];
    const connectFrom = (forwarded: string) => new Promise<number>((resolve) => {
      const ws = new WebSocket(`${gateway.wsUrl}?user=ip${open.length}`, { headers: { 'X-Forwarded-For': forwarded } });
      ws.once('open', () => { open.push(ws); resolve(101); });
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    });
    // The peer (127.0.0.1) is not a trusted proxy: every forged X-Forwarded-For counts as 127.0.0.1.
    expect(await connectFrom('1.1.1.1')).toBe(101);
    expect(await connectFrom('2.2.2.2')).toBe(101);
    expect(await connectFrom('3.3.3.3')).toBe(429);
    for (const ws of open) ws.terminate();
  });
});

describe('the server-side publish API', () => {
  let gateway: GatewayProcess;
  const KEY = 'backend-api-key-0123456789';
  beforeAll(async () => {
    gateway = await startGateway({ REDIS_URL: inject('redisUrl'), REDIS_PREFIX: uniquePrefix('api'), API_KEY: KEY, MAX_TEXT_LENGTH: '100' });
    await waitFor(async () => (await readyz(gateway)) === 200, { what: 'ready' });
  });
  afterAll(async () => {
    await gateway.stop();
  });

  const post = (room: string, body: unknown, key?: string) => fetch(`${gateway.httpUrl}/api/rooms/${room}/messages`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', ...(key && { Authorization: `Bearer ${key}` }) }, body: JSON.stringify(body),
  });

  it('checks the API key', async () => {
    expect((await post('lobby', { text: 'x' })).status).toBe(401);
    expect((await post('lobby', { text: 'x' }, 'wrong-key')).status).toBe(401);
    expect((await post('lobby', { text: 'x' }, `${KEY}x`)).status).toBe(401);
  });

  it('publishes with the same validation, ids and ordering as a client send', async () => {
    const member = await TestClient.connect(gateway.wsUrl, 'member');
    await member.request({ type: 'join', room: 'announcements' });
    const client = await member.request({ type: 'send', room: 'announcements', text: 'from a client' });
    const res = await post('announcements', { user: 'billing-bot', text: 'from the backend' }, KEY);
    expect(res.status).toBe(201);
    const { id, ts } = (await res.json()) as { id: string; ts: number };
    const delivered = await member.waitFor((f) => f.type === 'message' && f.text === 'from the backend');
    expect(delivered).toEqual({ type: 'message', room: 'announcements', id, user: 'billing-bot', text: 'from the backend', ts });
    expect(member.messages('announcements').map((m) => m.id)).toEqual([(client as { id: string }).id, id]);
    expect((await post('bad room', { text: 'x' }, KEY)).status).toBe(400);
    expect((await post('announcements', { text: 5 }, KEY)).status).toBe(400);
    expect((await post('announcements', { user: 'no spaces please', text: 'x' }, KEY)).status).toBe(400);
    expect((await post('announcements', { text: 'x'.repeat(101) }, KEY)).status).toBe(413);
    await member.close();
  });

  it('is off when no API key is configured', async () => {
    const plain = await startGateway({ REDIS_URL: inject('redisUrl') });
    expect((await fetch(`${plain.httpUrl}/api/rooms/lobby/messages`, { method: 'POST', body: '{}' })).status).toBe(404);
    await plain.stop();
  });
});
