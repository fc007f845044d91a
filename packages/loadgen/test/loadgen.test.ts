import { describe, expect, it } from 'vitest';
import { Histogram, makeText, planWorkers, readHeader, type LoadOptions } from '../src/index.js';

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
    const rooms = new Set(clients.map((c) => c.room));
    expect(rooms.size).toBe(3);
    for (const room of rooms) {
      const inRoom = clients.filter((c) => c.room === room);
      expect(inRoom).toHaveLength(10);
      expect(inRoom.filter((c) => c.sender)).toHaveLength(1);
      expect(new Set(inRoom.map((c) => c.url)).size).toBe(3); // members of a room on every node
    }
    expect(new Set(clients.filter((c) => c.sender).map((c) => c.url)).size).toBe(3); // senders on every node
  });
});
