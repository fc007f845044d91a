import type { AckFrame, MessageFrame } from '@chat/protocol';
import { compareIds } from '@chat/protocol';
import { TestClient, sleep, waitFor } from '@chat/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startCluster, type Cluster, type GatewayProcess } from './helpers/gateways.js';

const ROOM = 'headline';

/** A reader that, when its gateway dies, reconnects to a live one and rejoins with since = the last id it saw. */
class RecoveringReader {
  readonly connections: TestClient[] = [];
  /** `recovered` of every rejoin with since. */
  readonly recovered: boolean[] = [];
  reconnects = 0;
  #stopped = false;

  constructor(readonly user: string, private readonly pickGateway: () => GatewayProcess) {}

  get seen(): MessageFrame[] {
    return this.connections.flatMap((c) => c.messages(ROOM));
  }

  async connect(first: GatewayProcess): Promise<void> {
    await this.#open(first, undefined);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.connections.map((c) => c.close()));
  }

  async #open(gateway: GatewayProcess, since: string | undefined): Promise<void> {
    const client = await TestClient.connect(gateway.wsUrl, this.user);
    this.connections.push(client);
    const joined = await client.request(since ? { type: 'join', room: ROOM, since } : { type: 'join', room: ROOM });
    if (joined.type !== 'joined') throw new Error(`${this.user}: ${JSON.stringify(joined)}`);
    if (since !== undefined) this.recovered.push(joined.recovered === true);
    void client.closed.then(() => {
      if (!this.#stopped) void this.#reopen();
    });
  }

  async #reopen(): Promise<void> {
    this.reconnects++;
    const last = this.seen.at(-1)?.id;
    for (;;) {
      try {
        return await this.#open(this.pickGateway(), last);
      } catch {
        await sleep(50);
      }
    }
  }
}

describe('lossless recovery when a gateway dies mid-conversation', () => {
  let cluster: Cluster;
  const killed = new Set<GatewayProcess>();
  let next = 0;
  const alive = (): GatewayProcess => {
    const live = cluster.gateways.filter((g) => !killed.has(g));
    return live[next++ % live.length]!;
  };

  beforeAll(async () => {
    cluster = await startCluster(3, inject('redisUrl'), { RATE_LIMIT_PER_SEC: '1000', RATE_LIMIT_BURST: '1000' });
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'ready' });
  });
  afterAll(async () => {
    await Promise.all(cluster.gateways.filter((g) => !killed.has(g)).map((g) => g.stop()));
  });

  it('leaves every client with every acknowledged message, once, in the same order', async () => {
    const readers = Array.from({ length: 9 }, (_, i) => new RecoveringReader(`reader${i}`, alive));
    await Promise.all(readers.map((r, i) => r.connect(cluster.gateways[i % 3]!)));

    const acked: string[] = [];
    const perSender = 150;
    const sender = async (i: number): Promise<void> => {
      let client = await TestClient.connect(cluster.gateways[i]!.wsUrl, `sender${i}`);
      await client.request({ type: 'join', room: ROOM });
      for (let n = 0; n < perSender; n++) {
        try {
          const reply = await client.request({ type: 'send', room: ROOM, text: `s${i}-${n}` }, 3000);
          if (reply.type === 'ack') acked.push((reply as AckFrame).id);
        } catch {
          // Its gateway died: the message may or may not have been stored; carry on elsewhere.
          client = await TestClient.connect(alive().wsUrl, `sender${i}`);
          await client.request({ type: 'join', room: ROOM });
        }
        await sleep(2);
      }
      await client.close();
    };
    const sending = Promise.all([0, 1, 2].map(sender));

    await waitFor(() => acked.length >= 120, { what: 'traffic before the kill' });
    const victim = cluster.gateways[1]!;
    killed.add(victim);
    await victim.kill();
    await sending;

    const last = [...acked].sort(compareIds).at(-1)!;
    for (const r of readers) {
      await waitFor(() => r.seen.some((m) => m.id === last), { timeoutMs: 15_000, what: `${r.user} to see the last message` });
    }
    const reference = readers[0]!.seen.map((m) => m.id);
    expect(acked.length).toBeGreaterThanOrEqual(perSender * 3 - 10);
    expect(new Set(reference).size).toBe(reference.length); // no duplicate
    expect([...reference].sort(compareIds)).toEqual(reference); // in id order
    for (const id of acked) expect(reference).toContain(id); // nothing acknowledged is missing
    for (const r of readers) expect(r.seen.map((m) => m.id)).toEqual(reference); // the same for everyone
    expect(readers.filter((r) => r.reconnects > 0)).toHaveLength(3); // the victim's readers did reconnect
    expect(readers.flatMap((r) => r.recovered)).toEqual([true, true, true]);
    await Promise.all(readers.map((r) => r.stop()));
  }, 60_000);

  it('tells a client whose since is older than the kept history that it missed messages', async () => {
    const small = await startCluster(1, inject('redisUrl'), { HISTORY_SIZE: '20', JOIN_HISTORY: '5' });
    const writer = await TestClient.connect(small.gateways[0]!.wsUrl, 'writer');
    await writer.request({ type: 'join', room: 'short' });
    const first = (await writer.request({ type: 'send', room: 'short', text: 'first' })) as AckFrame;
    for (let i = 0; i < 60; i++) await writer.request({ type: 'send', room: 'short', text: `m${i}` });
    const late = await TestClient.connect(small.gateways[0]!.wsUrl, 'late');
    const joined = await late.request({ type: 'join', room: 'short', since: first.id });
    expect(joined).toMatchObject({ type: 'joined', recovered: false });
    expect(joined.type === 'joined' && joined.history.length).toBeGreaterThanOrEqual(20);
    expect(joined.type === 'joined' && joined.history.at(-1)!.text).toBe('m59');
    await Promise.all([writer.close(), late.close()]);
    await small.stop();
  });
});
