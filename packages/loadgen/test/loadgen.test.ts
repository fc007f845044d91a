import { describe, expect, it } from 'vitest';
import { Histogram, makeText, parseInfo, planRooms, planWorkers, readHeader, type LoadOptions, type RoomsOptions } from '../src/index.js';

describe('message header', () => {
  it('carries send time, sender and sequence, padded to the size asked', () => {
    const text = makeText(42, 7, 100);
    expect(text).toHaveLength(100);
    const header = readHeader(text)!;
    expect(header).toMatchObject({ sender: 42, seq: 7 });
    expect(Math.abs(header.sentAt - Date.now())).toBeLessThan(1000);
    expect(readHeader('not ours')).toBeNull();
  });
});

describe('Histogram', () => {
  it('answers quantiles within its bucket width and merges across workers', () => {
    const a = new Histogram();
    const b = new Histogram();
    for (let ms = 1; ms <= 100; ms++) (ms % 2 ? a : b).recordMs(ms);
    a.merge(b.toJSON());
    expect(a.count).toBe(100);
    expect(a.quantileMs(0.5)).toBeGreaterThanOrEqual(50);
    expect(a.quantileMs(0.5)).toBeLessThan(52);
    expect(a.quantileMs(0.99)).toBeGreaterThanOrEqual(99);
    expect(a.quantileMs(1)).toBe(100);
    expect(new Histogram().quantileMs(0.99)).toBe(0);
  });
});

describe('planWorkers', () => {
  const options = {
    scenario: 'fanout', transport: 'chat', urls: ['ws://a/ws', 'ws://b/ws', 'ws://c/ws'], clients: 30, rooms: 3, senders: 3,
    rate: 10, size: 100, duration: 1, ramp: 0, workers: 4, churn: 0, findMax: false, maxP99Ms: 50, stepSeconds: 1,
    stepFactor: 1.5, maxSteps: 1, metricsUrls: [], localAddresses: [], serverPids: [], resend: false, progress: () => {},
  } satisfies LoadOptions;

  it('spreads every client once over workers, rooms and URLs, one sender per room', () => {
    const plans = planWorkers(options);
    const clients = plans.flatMap((p) => p.clients);
    expect(clients.map((c) => c.index).sort((x, y) => x - y)).toEqual([...Array(30).keys()]);
    expect(Math.max(...plans.map((p) => p.clients.length)) - Math.min(...plans.map((p) => p.clients.length))).toBeLessThanOrEqual(1);
    expect(clients.every((c) => c.rooms.length === 1)).toBe(true);
    const rooms = new Set(clients.map((c) => c.rooms[0]));
    expect(rooms.size).toBe(3);
    for (const room of rooms) {
      const inRoom = clients.filter((c) => c.rooms[0] === room);
      expect(inRoom).toHaveLength(10);
      expect(inRoom.filter((c) => c.sends.length > 0)).toHaveLength(1);
      expect(new Set(inRoom.map((c) => c.url)).size).toBe(3); // members of a room on every node
    }
    const senders = clients.filter((c) => c.sends.length > 0);
    expect(senders.every((c) => c.sends[0]!.room === c.rooms[0])).toBe(true);
    expect(new Set(senders.map((c) => c.url)).size).toBe(3); // senders on every node
  });
});

describe('planRooms', () => {
  const base = {
    transport: 'chat', urls: ['ws://a/ws', 'ws://b/ws', 'ws://c/ws'], rates: [], size: 100, duration: 1, ramp: 0, workers: 2, localAddresses: [],
    checkpoints: [], probeJoins: 10, probeRate: 10, idleSeconds: 0, serverPids: [], redisUrls: [], gcInspectorPorts: [], maxP99Ms: 50, progress: () => {},
  } satisfies Partial<RoomsOptions>;

  it('big-room: every client in the one room, spread over URLs and workers, probes on the first worker', () => {
    const { plans, room } = planRooms({ ...base, scenario: 'big-room', rooms: 1, members: 30, clients: 30, senders: 2 });
    const clients = plans.flatMap((p) => p.clients);
    expect(clients).toHaveLength(30);
    expect(clients.every((c) => c.rooms.length === 1 && c.rooms[0] === room)).toBe(true);
    expect(clients.filter((c) => c.sends.length > 0).map((c) => c.index).sort()).toEqual([0, 1]);
    expect(new Set(clients.map((c) => c.url)).size).toBe(3);
    // Each worker opens its clients in index order: a fill "up to C" is exactly C clients.
    for (const p of plans) expect(p.clients.map((c) => c.index)).toEqual([...p.clients.map((c) => c.index)].sort((a, b) => a - b));
    expect(plans[0]!.probes.length).toBeGreaterThan(0);
    expect(plans[1]!.probes).toEqual([]);
  });

  it('many-rooms: rooms of distinct members on different URLs; fewer clients join several rooms each', () => {
    for (const clients of [60, 12]) {
      const { plans } = planRooms({ ...base, scenario: 'many-rooms', rooms: 30, members: 2, clients, senders: 30 });
      const all = plans.flatMap((p) => p.clients);
      expect(all).toHaveLength(clients);
      const members = new Map<string, typeof all>();
      for (const c of all) for (const room of c.rooms) members.set(room, [...(members.get(room) ?? []), c]);
      expect(members.size).toBe(30);
      for (const inRoom of members.values()) {
        expect(new Set(inRoom.map((c) => c.index)).size).toBe(2);
        expect(new Set(inRoom.map((c) => c.url)).size).toBe(2);
      }
      expect(all.every((c) => c.rooms.length === (30 * 2) / clients)).toBe(true);
      const sends = all.flatMap((c) => c.sends);
      expect(new Set(sends.map((s) => s.room)).size).toBe(30); // one sender per room
      expect(new Set(sends.map((s) => s.key)).size).toBe(30);
    }
  });
});

describe('parseInfo', () => {
  it('reads CPU, script calls, commands and memory from INFO', () => {
    const text = ['# CPU', 'used_cpu_sys:1.500000', 'used_cpu_user:2.250000', '# Memory', 'used_memory:1048576', 'used_memory_human:1.00M',
      '# Stats', 'total_commands_processed:900', '# Commandstats', 'cmdstat_evalsha:calls=40,usec=100,usec_per_call=2.5',
      'cmdstat_eval:calls=2,usec=10,usec_per_call=5', 'cmdstat_publish:calls=7,usec=7,usec_per_call=1', 'cmdstat_fcall:calls=1,usec=1,usec_per_call=1', ''].join('\r\n');
    expect(parseInfo(text)).toEqual({ cpuSeconds: 3.75, scriptCalls: 43, commands: 900, usedMemory: 1048576 });
  });
});
