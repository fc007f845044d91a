import { TestClient, waitFor } from '@chat/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startGateway, type GatewayProcess } from './helpers/gateways.js';

describe('a gateway under bad input keeps serving everyone else', () => {
  let gateway: GatewayProcess;
  let good: TestClient;
  let goodSent = 0;

  beforeAll(async () => {
    gateway = await startGateway({ REDIS_URL: inject('redisUrl'), REDIS_PREFIX: `bad-input-${Date.now()}:` });
    good = await TestClient.connect(gateway.wsUrl, 'good');
    expect(await good.request({ type: 'join', room: 'calm' })).toMatchObject({ type: 'joined' });
  });
  afterAll(async () => {
    await good.close();
    expect((await gateway.stop()).code).toBe(0);
  });

  async function goodClientStillWorks(): Promise<void> {
    const text = `still here ${++goodSent}`;
    const reply = await good.request({ type: 'send', room: 'calm', text });
    expect(reply, JSON.stringify(reply)).toMatchObject({ type: 'ack' });
    await good.waitFor((f) => f.type === 'message' && f.text === text);
  }

  it('answers garbage, binary and unknown frames with bad_request on an open connection', async () => {
    const hostile = await TestClient.connect(gateway.wsUrl, 'hostile');
    hostile.send(Buffer.from([0, 159, 146, 150, 255]), true);
    hostile.send('\u0000\u0001 not json');
    hostile.send('{"type":"join","room":"x"');
    hostile.send({ type: 'format-disk', ref: 'r1' });
    hostile.send({ type: 'join', room: '../../etc', ref: 'r2' });
    await hostile.until(() => hostile.ofType('error').length === 5, { what: 'five errors' });
    expect(hostile.ofType('error').every((e) => e.code === 'bad_request')).toBe(true);
    expect(hostile.ofType('error').filter((e) => e.ref).map((e) => e.ref)).toEqual(['r1', 'r2']);
    expect(await hostile.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    await hostile.close();
    await goodClientStillWorks();
  });

  it('closes an oversize frame with 1009', async () => {
    for (const size of [64 * 1024 + 1, 1536 * 1024]) { // over MAX_FRAME_BYTES, within the 2 MiB read cap
      const hostile = await TestClient.connect(gateway.wsUrl, 'hostile');
      hostile.send('{"type":"send","room":"calm","text":"' + 'x'.repeat(size) + '"}');
      expect((await hostile.closed).code).toBe(1009);
    }
    await goodClientStillWorks();
  });

  it('rate limits a flood, then closes it with 1008', async () => {
    const flooder = await TestClient.connect(gateway.wsUrl, 'flooder');
    for (let i = 0; i < 2000 && flooder.closeInfo === undefined; i++) flooder.send({ type: 'ping', ref: `p${i}` });
    expect((await flooder.closed).code).toBe(1008);
    expect(flooder.ofType('error').some((e) => e.code === 'rate_limited')).toBe(true);
    expect(flooder.ofType('pong').length).toBeGreaterThanOrEqual(100);
    await goodClientStillWorks();
  });

  it('counts what happened in its metrics', async () => {
    await waitFor(async () => {
      const text = await (await fetch(`${gateway.httpUrl}/metrics`)).text();
      return text.includes('chat_connections_closed_total{code="1008"} 1') && text.includes('chat_connections_closed_total{code="1009"} 2');
    }, { what: 'close counters' });
  });
});
