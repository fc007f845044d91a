import { Cluster, Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { redisContents, sleep, startRedisCluster, startRedisServer, uniquePrefix, type RedisServer } from '@chat/testkit';
import {
  BrokerUnavailableError, CLUSTER_EVENT_TYPES, KeySpace, RedisBroker, RedisModeration, RedisDirectory, RedisEventFeed, RedisMembership, RedisOfflineNotices, RedisReadPositions, RedisRevocations, createRedisClients, duplicateForChannel, type RedisClients,
} from '../src/index.js';
import { UNREAD_WINDOW_MS, clusterStateContract } from './cluster-state-contract.js';
import { changesContract } from './changes-contract.js';
import { conversationContract } from './conversation-contract.js';
import { HISTORY_SIZE, RecordingListener, brokerContract, eventually } from './contract.js';

brokerContract('RedisBroker', async () => {
  const url = inject('redisUrl');
  const keys = new KeySpace(uniquePrefix('contract'));
  const clients: RedisClients[] = [];
  return {
    create() {
      const c = createRedisClients(url, { commandTimeoutMs: 2000 });
      clients.push(c);
      return new RedisBroker({ command: c.command, pubsub: c.pubsub, keys, historySize: HISTORY_SIZE });
    },
    async cleanup() {
      const admin = new Redis(url);
      const keysLeft = await admin.keys(`${keys.prefix}*`);
      if (keysLeft.length > 0) await admin.del(...keysLeft);
      await admin.quit();
      await Promise.all(clients.map((c) => c.close()));
    },
  };
});

/** The Redis connections of one harness under its own key prefix, and its cleanup: keys deleted, connections closed. */
function redisHarness(name: string) {
  const url = inject('redisUrl');
  const keys = new KeySpace(uniquePrefix(name));
  const clients: RedisClients[] = [];
  const connections: Redis[] = [];
  const connection = () => {
    const redis = new Redis(url);
    connections.push(redis);
    return redis;
  };
  return {
    keys,
    connection,
    brokerClients() {
      const c = createRedisClients(url, { commandTimeoutMs: 2000 });
      clients.push(c);
      return c;
    },
    async cleanup() {
      const admin = connection();
      const keysLeft = await admin.keys(`${keys.prefix}*`);
      if (keysLeft.length > 0) await admin.del(...keysLeft);
      await Promise.all(clients.map((c) => c.close()));
      await Promise.all(connections.map((r) => r.quit().catch(() => {})));
    },
  };
}

conversationContract('RedisBroker', async () => {
  const { keys, connection, brokerClients, cleanup } = redisHarness('conv');
  return {
    create: () => new RedisBroker({ ...brokerClients(), keys, historySize: HISTORY_SIZE }),
    membership: () => new RedisMembership(connection(), keys),
    readPositions: () => new RedisReadPositions(connection(), keys),
    cleanup,
  };
});

changesContract('RedisBroker', async () => {
  const { keys, connection, brokerClients, cleanup } = redisHarness('changes');
  const recording = { types: CLUSTER_EVENT_TYPES, backlogLimit: 1000 };
  return {
    create() {
      const broker = new RedisBroker({ ...brokerClients(), keys, historySize: HISTORY_SIZE, events: recording });
      return { broker, changes: broker.changes };
    },
    moderation: () => new RedisModeration(connection(), keys),
    membership: () => new RedisMembership(connection(), keys),
    readPositions: () => new RedisReadPositions(connection(), keys),
    dump: () => redisContents(connection(), `${keys.prefix}*`),
    cleanup,
  };
});

clusterStateContract('RedisBroker', async () => {
  const { keys, connection, brokerClients, cleanup } = redisHarness('state');
  const recording = { types: CLUSTER_EVENT_TYPES, backlogLimit: 1000 };
  return {
    create: () => new RedisBroker({ ...brokerClients(), keys, historySize: HISTORY_SIZE, events: recording, unreadWindowMs: UNREAD_WINDOW_MS }),
    membership: () => new RedisMembership(connection(), keys),
    notices: async () => {
      const notices = new RedisOfflineNotices({ command: connection(), subscriber: connection(), keys, sharded: false, recording });
      await notices.listen(() => {});
      return notices;
    },
    directory: () => new RedisDirectory(connection(), keys),
    feed: () => new RedisEventFeed({ command: connection(), subscriber: connection(), keys, sharded: false }),
    revocations: async () => {
      const revocations = new RedisRevocations({ command: connection(), subscriber: connection(), keys, waitMs: 2000 });
      await revocations.start();
      return revocations;
    },
    cleanup,
  };
});

describe('RedisRevocations', () => {
  it('will not answer while its channel is down, and once back knows what was revoked meanwhile', async () => {
    const url = inject('redisUrl');
    const keys = new KeySpace(uniquePrefix('revoke'));
    const [command, subscriber, other] = [new Redis(url), new Redis(url), new Redis(url)];
    const here = new RedisRevocations({ command, subscriber, keys, waitMs: 2000 });
    const there = new RedisRevocations({ command: other, subscriber: other, keys, waitMs: 2000 });
    try {
      await here.start();
      expect(here.revokedBefore('ivy')).toBeUndefined();
      subscriber.disconnect();
      await eventually(() => subscriber.status !== 'ready', 'subscriber down');
      expect(() => here.revokedBefore('ivy')).toThrow(BrokerUnavailableError);
      await there.revoke('ivy', 4321, 60_000);
      await subscriber.connect();
      await eventually(() => { try { return here.revokedBefore('ivy') === 4321; } catch { return false; } }, 'trusted again, with the revocation');
    } finally {
      await Promise.all([here.close(), there.close()]);
      await command.del(keys.revocations());
      for (const r of [command, subscriber, other]) r.disconnect();
    }
  });
});

describe('RedisRevocations on a Redis Cluster', () => {
  it('reaches every node through the cluster-wide channel, well before the periodic re-read', async () => {
    const redis = await startRedisCluster({ primaries: 3, replicasPerPrimary: 0 });
    const nodes = redis.seeds.split(',').map((seed) => ({ host: '127.0.0.1', port: Number(seed.split(':')[1]) }));
    const keys = new KeySpace(uniquePrefix('revoke-cluster'));
    const [a, b] = [new Cluster(nodes), new Cluster(nodes)];
    const [subA, subB] = [duplicateForChannel(a), duplicateForChannel(b)];
    const here = new RedisRevocations({ command: a, subscriber: subA, keys, waitMs: 3000, refreshMs: 60_000 });
    const there = new RedisRevocations({ command: b, subscriber: subB, keys, waitMs: 3000, refreshMs: 60_000 });
    try {
      await Promise.all([here.start(), there.start()]);
      expect(there.revokedBefore('zed')).toBeUndefined();
      await here.revoke('zed', 777, 60_000);
      await eventually(() => there.revokedBefore('zed') === 777, 'the other node hears it', 2000);
    } finally {
      await Promise.all([here.close(), there.close()]);
      for (const c of [a, b, subA, subB]) c.disconnect();
      await redis.stop();
    }
  }, 60_000);
});

describe('RedisBroker when Redis goes away', () => {
  let server: RedisServer | undefined;
  let clients: RedisClients | undefined;
  afterEach(async () => {
    await clients?.close();
    await server?.cleanup();
  });

  it('reports down, fails within its wait bound, then restores its subscriptions by itself', async () => {
    server = await startRedisServer();
    clients = createRedisClients(server.url, { commandTimeoutMs: 1000 });
    const broker = new RedisBroker({ ...clients, keys: new KeySpace('k:'), historySize: 10, healthCheckMs: 200, connectWaitMs: 500 });
    const listener = new RecordingListener();
    broker.start(listener);
    await eventually(() => broker.up, 'up');
    await broker.subscribeRoom('lobby');

    await server.kill();
    await eventually(() => !broker.up, 'down');
    const started = Date.now();
    await expect(broker.append({ room: 'lobby', user: 'u', head: 'h', body: 'b', ts: 1 })).rejects.toBeInstanceOf(BrokerUnavailableError);
    expect(Date.now() - started).toBeLessThan(1500);

    await server.start();
    await eventually(() => broker.up, 'up again', 10_000);
    expect(listener.statuses).toEqual([true, false, true]);
    await broker.append({ room: 'lobby', user: 'u', head: 'h', body: 'b', ts: 1 });
    await eventually(() => listener.messages.length === 1, 'delivery after restart');
    await broker.close();
  });
});

describe('RedisBroker presence when a node dies without a word', () => {
  it('withdraws the dead node\'s users within the presence timeout, and a node that was reaped re-announces', async () => {
    const url = inject('redisUrl');
    const keys = new KeySpace(uniquePrefix('presence'));
    const survivorClients = createRedisClients(url, { commandTimeoutMs: 1000 });
    const victimClients = createRedisClients(url, { commandTimeoutMs: 1000 });
    const ttl = 400;
    const survivor = new RedisBroker({ ...survivorClients, keys, historySize: 10, nodeId: 'survivor', presenceTtlMs: ttl });
    const victim = new RedisBroker({ ...victimClients, keys, historySize: 10, nodeId: 'victim', presenceTtlMs: ttl });
    const seen = new RecordingListener();
    survivor.start(seen);
    victim.start(new RecordingListener());
    await eventually(() => survivor.up && victim.up, 'up');
    await survivor.subscribeRoom('r');
    await survivor.presence.join('r', 'stays');
    await victim.presence.join('r', 'goes');
    await eventually(() => seen.presence.length === 2, 'two online');

    // The victim's process "dies": its connections drop and it never heartbeats again.
    await victimClients.close();
    const died = Date.now();
    await eventually(() => seen.presence.includes('r:goes:offline'), 'offline for the dead node', 5000);
    const took = Date.now() - died;
    expect(took).toBeLessThan(ttl * 1.25 + 500);
    expect(await survivor.presence.join('r', 'stays', { list: 10 })).toMatchObject({ count: 1, first: ['stays'] });

    // Redis loses everything (as on a restart without persistence): the survivor's next heartbeat finds
    // itself unregistered and announces its users and rooms again.
    const admin = new Redis(url);
    await admin.del(...(await admin.keys(`${keys.prefix}*`)));
    await eventually(() => seen.presence.filter((p) => p === 'r:stays:online').length === 2, 're-announced', 5000);
    expect(await survivor.presence.members('r', undefined, 10)).toEqual({ users: ['stays'], count: 1 });

    // Redis keeps the node registered but loses the room's latest writes (a failover onto a replica
    // that lacked them): the reconnect that a failover causes makes the node write its rooms again.
    await survivor.presence.join('r', 'later');
    await admin.del(...(await admin.keys(`${keys.prefix}room:{r}:*`)));
    expect(await survivor.presence.members('r', undefined, 10)).toEqual({ users: [], count: 0 });
    await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    await admin.client('KILL', 'TYPE', 'pubsub');
    await eventually(() => seen.presence.filter((p) => p === 'r:later:online').length === 2, 'written again after the reconnect', 5000);
    expect(await survivor.presence.members('r', undefined, 10)).toEqual({ users: ['later', 'stays'], count: 2 });
    await admin.quit();
    await survivor.close();
    await survivorClients.close();
  });
});

describe('RedisBroker cluster events when a node dies without a word', () => {
  it('records user.offline, member.left and room.vacated once, within 1.25 × the presence timeout, even in a room no other node holds', async () => {
    const url = inject('redisUrl');
    const keys = new KeySpace(uniquePrefix('reap'));
    const ttl = 400;
    const events = { types: CLUSTER_EVENT_TYPES, backlogLimit: 1000 };
    const survivorClients = createRedisClients(url, { commandTimeoutMs: 1000 });
    const victimClients = createRedisClients(url, { commandTimeoutMs: 1000 });
    const survivor = new RedisBroker({ ...survivorClients, keys, historySize: 10, nodeId: 'survivor', presenceTtlMs: ttl, events });
    const victim = new RedisBroker({ ...victimClients, keys, historySize: 10, nodeId: 'victim', presenceTtlMs: ttl, events });
    survivor.start(new RecordingListener());
    victim.start(new RecordingListener());
    await eventually(() => survivor.up && victim.up, 'up');
    await survivor.presence.setUserConnections('both', 1);
    await victim.presence.setUserConnections('both', 1);
    await victim.presence.setUserConnections('only', 2);
    await victim.presence.join('alone', 'only', { connections: 2 });
    const reader = new Redis(url);
    const feed = new RedisEventFeed({ command: reader, subscriber: new Redis(url), keys, sharded: false });
    const read = async () => {
      const out: Array<{ type: string; ts: number; data: Record<string, string> }> = [];
      for (const { stream } of await feed.backlog()) {
        const claimed = await feed.claim(stream, 'test', 1000, 1000);
        if (!('events' in claimed)) continue;
        for (const e of claimed.events) {
          out.push(JSON.parse(e.body));
          await feed.ack(stream, 'test', e.entry);
        }
      }
      return out;
    };

    expect((await read()).map((e) => e.type).sort()).toEqual(['member.joined', 'room.occupied', 'user.online', 'user.online']);

    await victimClients.close();
    const died = Date.now();
    const after: Awaited<ReturnType<typeof read>> = [];
    for (const deadline = Date.now() + 5000; Date.now() < deadline && !after.some((e) => e.type === 'room.vacated');) {
      after.push(...(await read()));
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, ttl)); // and nothing more comes
    after.push(...(await read()));
    expect(after.map((e) => `${e.type}:${JSON.stringify(e.data)}`).sort()).toEqual([
      'member.left:{"room":"alone","user":"only"}',
      'room.vacated:{"room":"alone"}',
      'user.offline:{"user":"only"}',
    ]);
    for (const e of after) expect(e.ts - died).toBeLessThan(ttl * 1.25 + 100);
    const directory = new RedisDirectory(reader, keys);
    expect(await directory.userPresence('both')).toEqual({ online: true, connections: 1, rooms: [] });
    expect((await directory.activeRooms(undefined, 10)).rooms).toEqual([]);
    await survivor.close();
    await survivorClients.close();
    await reader.quit();
  });
});

describe('RedisMembership after a crash between its two writes', () => {
  it('leaves at most a listing whose room does not admit the user, which readers skip and unlist drops after the grace', async () => {
    const url = inject('redisUrl');
    const keys = new KeySpace(uniquePrefix('crash'));
    const redis = new Redis(url);
    const membership = new RedisMembership(redis, keys, 2000, 100);
    try {
      // An add that crashed after listing, before the room's write:
      await redis.zadd(keys.userConversations('bob'), Date.now(), 'half-added');
      expect(await membership.roomsOf('bob')).toEqual(['half-added']);
      expect(await membership.access('half-added', 'bob')).toBe('open');
      await membership.unlist('bob', ['half-added']);
      expect(await membership.roomsOf('bob')).toEqual(['half-added']); // an add may still be under way
      await sleep(150);
      await membership.unlist('bob', ['half-added']);
      expect(await membership.roomsOf('bob')).toEqual([]);
      // A removal that crashed after the room's write, before unlisting, leaves the same kind of listing:
      await membership.add('crew', ['bob']);
      await redis.zrem(keys.roomMembers('crew'), 'bob');
      expect(await membership.access('crew', 'bob')).toBe('outsider');
      await sleep(150);
      await membership.unlist('bob', ['crew']);
      expect(await membership.roomsOf('bob')).toEqual([]);
      // And a listing is never dropped while its add completes: the add writes it afresh.
      await redis.zadd(keys.userConversations('bob'), Date.now() - 10_000, 'again');
      await membership.add('again', ['bob']);
      await membership.unlist('bob', ['again']);
      expect(await membership.roomsOf('bob')).toEqual(['again']);
    } finally {
      const left = await redis.keys(`${keys.prefix}*`);
      if (left.length > 0) await redis.del(...left);
      await redis.quit();
    }
  });
});
