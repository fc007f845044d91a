import { describe, expect, it } from 'vitest';
import {
  BrokerUnavailableError, CLUSTER_EVENT_TYPES, MemoryBroker, MemoryMessageChanges, MemoryModeration, MemoryDirectory, MemoryEventFeed, MemoryHub, MemoryMembership, MemoryOfflineNotices, MemoryReadPositions, MemoryRevocations,
} from '../src/index.js';
import { UNREAD_WINDOW_MS, clusterStateContract } from './cluster-state-contract.js';
import { changesContract } from './changes-contract.js';
import { conversationContract } from './conversation-contract.js';
import { HISTORY_SIZE, RecordingListener, brokerContract } from './contract.js';

brokerContract('MemoryBroker', async () => {
  const hub = new MemoryHub();
  return { create: () => new MemoryBroker({ historySize: HISTORY_SIZE, hub }), cleanup: async () => {} };
});

clusterStateContract('MemoryBroker', async () => {
  const hub = new MemoryHub();
  return {
    create: () => new MemoryBroker({ historySize: HISTORY_SIZE, hub, events: { types: CLUSTER_EVENT_TYPES, backlogLimit: 1000 }, unreadWindowMs: UNREAD_WINDOW_MS }),
    membership: () => new MemoryMembership(hub),
    notices: async () => new MemoryOfflineNotices(hub, { types: CLUSTER_EVENT_TYPES, backlogLimit: 1000 }),
    directory: () => new MemoryDirectory(hub),
    feed: () => new MemoryEventFeed(hub.events),
    revocations: async () => new MemoryRevocations(hub),
    cleanup: async () => {},
  };
});

changesContract('MemoryBroker', async () => {
  const hub = new MemoryHub();
  return {
    create() {
      const broker = new MemoryBroker({ historySize: HISTORY_SIZE, hub, events: { types: CLUSTER_EVENT_TYPES, backlogLimit: 1000 } });
      return { broker, changes: new MemoryMessageChanges(hub, broker) };
    },
    moderation: () => new MemoryModeration(hub),
    membership: () => new MemoryMembership(hub),
    readPositions: () => new MemoryReadPositions(hub),
    cleanup: async () => {},
  };
});

conversationContract('MemoryBroker', async () => {
  const hub = new MemoryHub();
  return {
    create: () => new MemoryBroker({ historySize: HISTORY_SIZE, hub }),
    membership: () => new MemoryMembership(hub),
    readPositions: () => new MemoryReadPositions(hub),
    cleanup: async () => {},
  };
});

describe('MemoryBroker outages (for gateway tests)', () => {
  it('fails every call with BrokerUnavailableError while unavailable, and reports it', async () => {
    const broker = new MemoryBroker({ historySize: 10 });
    const listener = new RecordingListener();
    broker.start(listener);
    await Promise.resolve();
    broker.setAvailable(false);
    expect(broker.up).toBe(false);
    await expect(broker.append({ room: 'r', user: 'u', head: '', body: '', ts: 0 })).rejects.toBeInstanceOf(BrokerUnavailableError);
    await expect(broker.subscribeRoom('r')).rejects.toBeInstanceOf(BrokerUnavailableError);
    broker.setAvailable(true);
    expect(listener.statuses).toEqual([true, false, true]);
    await expect(broker.append({ room: 'r', user: 'u', head: '', body: '', ts: 0 })).resolves.toMatchObject({ id: expect.stringMatching(/^\d+-\d+$/) });
  });
});
