import { ChatClient, type WebSocketLike } from '@chat/client';
import { compareIds, type MessageFrame } from '@chat/protocol';
import { TestClient, startRedisServer, waitFor, type RedisPersistence, type RedisServer } from '@chat/testkit';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { readyz, startCluster, type Cluster } from './helpers/gateways.js';
import { expectToldOfLoss, expectTruthful, rejoin, steadySender, storedIds, type Rejoin } from './helpers/history.js';

/*
 * One Redis server under three gateways, per persistence setting
 * (docs/redis-topologies.md#durability): what survives a crash, and that
 * whatever did not is never passed off as recovered.
 */
const ROOM = 'durable';
const ENV = { BROKER_TIMEOUT_MS: '1000', JOIN_HISTORY: '1000', RATE_LIMIT_PER_SEC: '1000', RATE_LIMIT_BURST: '1000' };
const webSocket = (url: string) => new WebSocket(url) as unknown as WebSocketLike;

describe('Redis crashes under traffic, per persistence setting', () => {
  let redis: RedisServer | undefined;
  let cluster: Cluster | undefined;
  const clients: TestClient[] = [];
  const libraries: ChatClient[] = [];
  afterEach(async () => {
    for (const c of libraries.splice(0)) c.close();
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await cluster?.stop();
    await redis?.cleanup();
  });

  const setUp = async (persistence: RedisPersistence) => {
    redis = await startRedisServer({ persistence });
    const started = await startCluster(3, redis.url, ENV);
    cluster = started;
    await allReady(started, 'ready');
    // One member per gateway; the first one sends.
    const members = await Promise.all(started.gateways.map((g, i) => TestClient.connect(g.wsUrl, `member${i}`)));
    clients.push(...members);
    for (const m of members) await m.request({ type: 'join', room: ROOM });
    return { redis, cluster: started, members, url: (i: number) => started.gateways[i]!.wsUrl };
  };
  /** A member that saw the room up to some message and left: it comes back with that `since`. */
  const leaveAfter = async (url: string, user: string, count: number): Promise<string> => {
    const client = await TestClient.connect(url, user);
    await client.request({ type: 'join', room: ROOM });
    await client.until(() => client.messages(ROOM).length >= count, { what: `${user} to see ${count}` });
    const last = client.messages(ROOM).at(-1)!.id;
    await client.close();
    return last;
  };
  const crash = async (server: RedisServer, c: Cluster): Promise<void> => {
    await server.kill();
    await server.start();
    await allReady(c, 'ready after the restart');
  };

  it('memory only: a restart empties the rooms; members are closed 1013 and every rejoin from before says recovered: false', async () => {
    const { redis, cluster, members, url } = await setUp('none');
    const library = new ChatClient({ url: url(2), user: 'library', webSocket, backoffMinMs: 100 });
    libraries.push(library);
    const gaps: boolean[] = [];
    const seen: MessageFrame[] = [];
    library.on('joined', (_frame, info) => info.resumed && gaps.push(info.gap));
    library.on('message', (m) => seen.push(m));
    await library.connect();
    await library.join(ROOM);

    const traffic = steadySender(members[0]!, ROOM, 20);
    const away = await leaveAfter(url(1), 'away', 5);
    await waitFor(() => traffic.acked().length >= 20, { what: 'traffic before the crash' });
    await crash(redis, cluster);
    await traffic.stop();

    // Told: every member connected through the loss is closed with 1013...
    for (const m of members) expect((await m.closed).code).toBe(1013);
    // ...and the client library rejoins by itself and reports the gap.
    await waitFor(() => gaps.length > 0, { what: 'the library to rejoin' });
    expect(gaps).toEqual([true]);
    const writer = await TestClient.connect(url(0), 'writer');
    clients.push(writer);
    await writer.request({ type: 'join', room: ROOM });
    const fresh = (await writer.request({ type: 'send', room: ROOM, text: 'after the restart' }));
    await waitFor(() => seen.some((m) => m.text === 'after the restart'), { what: 'the library to get the new message' });
    expect(seen.map((m) => m.id)).toEqual([...new Set(seen.map((m) => m.id))].sort(compareIds));

    const acked = traffic.acked();
    const rejoins: Rejoin[] = [];
    for (const [i, m] of members.entries()) rejoins.push(await rejoin(url(i), `member${i}`, ROOM, m.messages(ROOM).at(-1)!.id));
    rejoins.push(await rejoin(url(2), 'away', ROOM, away));
    expect(rejoins.map((r) => r.joined.recovered)).toEqual([false, false, false, false]);
    expectTruthful(rejoins, acked, await storedIds(url(1), ROOM));
    // From a message stored after the restart, continuity is provable again.
    expect((await rejoin(url(1), 'later', ROOM, fresh.type === 'ack' ? fresh.id : '')).joined.recovered).toBe(true);
  });

  it('snapshot: a restart from an older snapshot tells those away since before its end, and recovers those after', async () => {
    const { redis, cluster, members, url } = await setUp('snapshot');
    const [sender] = members as [TestClient];
    const send = async (text: string) => {
      const reply = await sender.request({ type: 'send', room: ROOM, text });
      if (reply.type !== 'ack') throw new Error(JSON.stringify(reply));
      return reply.id;
    };
    const first = [];
    for (let i = 0; i < 5; i++) first.push(await send(`saved ${i}`));
    const admin = new Redis(redis.url);
    await admin.save();
    await admin.quit();
    const unsaved = [];
    for (let i = 0; i < 5; i++) unsaved.push(await send(`unsaved ${i}`));
    for (const m of members) await m.until(() => m.messages(ROOM).length === 10, { what: 'ten messages' });
    await crash(redis, cluster);

    for (const m of members) expect((await m.closed).code).toBe(1013);
    const stored = await storedIds(url(0), ROOM);
    expect(stored).toEqual(first);
    const rejoins = [
      await rejoin(url(1), 'away-early', ROOM, first[1]!), // still stored, but before the loss
      await rejoin(url(2), 'away-at-end', ROOM, first[4]!), // the snapshot's last message
      await rejoin(url(0), 'away-late', ROOM, unsaved[2]!), // a message the snapshot lacks
      ...await Promise.all(members.map((m, i) => rejoin(url(i), `member${i}`, ROOM, m.messages(ROOM).at(-1)!.id))),
    ];
    expect(rejoins.map((r) => r.joined.recovered)).toEqual(rejoins.map(() => false));
    expect(rejoins[0]!.joined.history.map((m) => m.id)).toEqual(first.slice(2));

    // After the loss: a member away since a message stored after the restart gets every one since, recovered.
    const writer = await TestClient.connect(url(1), 'writer');
    clients.push(writer);
    await writer.request({ type: 'join', room: ROOM });
    const after = [];
    for (let i = 0; i < 3; i++) {
      const reply = await writer.request({ type: 'send', room: ROOM, text: `after ${i}` });
      after.push(reply.type === 'ack' ? reply.id : '');
    }
    const continuous = await rejoin(url(2), 'continuous', ROOM, after[0]!);
    expect(continuous.joined.recovered).toBe(true);
    expect(continuous.joined.history.map((m) => m.id)).toEqual(after.slice(1));
    expectTruthful([...rejoins, continuous], [...first, ...unsaved, ...after], await storedIds(url(0), ROOM));
  });

  it('AOF appendfsync always: nothing acknowledged is lost; members stay connected and rejoins recover', async () => {
    const { redis, cluster, members, url } = await setUp('aof-always');
    const traffic = steadySender(members[0]!, ROOM, 20);
    const away = await leaveAfter(url(1), 'away', 5);
    await waitFor(() => traffic.acked().length >= 20, { what: 'traffic before the crash' });
    await crash(redis, cluster);
    const ackedAtRestart = traffic.acked().length;
    await waitFor(() => traffic.acked().length >= ackedAtRestart + 10, { what: 'traffic after the restart' });
    await traffic.stop();

    const acked = traffic.acked();
    const stored = await storedIds(url(2), ROOM);
    expect(acked.filter((id) => !stored.includes(id))).toEqual([]);
    for (const m of members) {
      await m.until(() => acked.every((id) => m.messages(ROOM).some((s) => s.id === id)), { what: `${m.label} to have every ack` });
      const got = m.messages(ROOM).map((s) => s.id);
      expect(got, 'each once, in order').toEqual([...new Set(got)].sort(compareIds));
      expect(m.closeInfo).toBeUndefined();
    }
    const back = await rejoin(url(0), 'away', ROOM, away);
    expect(back.joined.recovered).toBe(true);
    expect(back.joined.history.map((m) => m.id)).toEqual(stored.filter((id) => compareIds(id, away) > 0));
  });

  it('AOF appendfsync everysec: a graceful restart loses nothing; after a crash, nothing lost is passed off as recovered', async () => {
    const { redis, cluster, members, url } = await setUp('aof-everysec');
    const traffic = steadySender(members[0]!, ROOM, 20);
    await waitFor(() => traffic.acked().length >= 20, { what: 'traffic before the restart' });
    await redis.stop(); // SHUTDOWN: the file is flushed and fsynced
    await redis.start();
    await allReady(cluster, 'ready after the graceful restart');
    const ackedAtRestart = traffic.acked().length;
    await waitFor(() => traffic.acked().length >= ackedAtRestart + 10, { what: 'traffic after the restart' });
    const beforeCrash = traffic.acked();
    const storedAfterGraceful = await storedIds(url(1), ROOM);
    expect(beforeCrash.filter((id) => !storedAfterGraceful.includes(id))).toEqual([]);
    for (const m of members) expect(m.closeInfo).toBeUndefined();

    const since = members[1]!.messages(ROOM).at(-1)!.id;
    await crash(redis, cluster);
    await traffic.stop();
    const stored = await storedIds(url(1), ROOM);
    const acked = traffic.acked();
    const lost = acked.filter((id) => !stored.includes(id));
    process.stdout.write(`${JSON.stringify({ everysecCrash: { acked: acked.length, lost: lost.length } })}\n`);
    const rejoins = [await rejoin(url(2), 'away', ROOM, since)];
    for (const [i, m] of members.entries()) {
      await expectToldOfLoss(m, ROOM, stored);
      rejoins.push(await rejoin(url(i), `member${i}`, ROOM, m.messages(ROOM).at(-1)!.id));
    }
    expectTruthful(rejoins, acked, stored);
  });
});

function allReady(cluster: Cluster, what: string): Promise<boolean> {
  return waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what, timeoutMs: 15_000 });
}
