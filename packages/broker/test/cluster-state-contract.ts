import { beforeEach, describe, expect, it } from 'vitest';
import { CLUSTER_EVENT_TYPES, type Broker, type Directory, type EventFeed, type Membership, type OfflineNotices, type TokenRevocations } from '../src/index.js';
import { RecordingListener, eventually, twoNodes } from './contract.js';

/** Nodes of one cluster, with the directory and event feed over their shared state. */
export interface ClusterStateHarness {
  /** A node recording every cluster event type, marking members-only rooms due UNREAD_WINDOW_MS after a message. */
  create(): Broker;
  membership(): Membership;
  /** One node's view of the due rooms. */
  notices(): Promise<OfflineNotices>;
  directory(): Directory;
  feed(): EventFeed;
  /** One node's view of the token revocations, started. */
  revocations(): Promise<TokenRevocations>;
  cleanup(): Promise<void>;
}

interface Event {
  id: string;
  type: string;
  ts: number;
  data: Record<string, unknown>;
}

/** Reads and acknowledges every pending event, stream by stream, oldest first. */
async function drain(feed: EventFeed): Promise<Event[]> {
  const out: Event[] = [];
  for (const { stream } of await feed.backlog()) {
    for (;;) {
      const claimed = await feed.claim(stream, 'reader', 5000, 100);
      if ('heldForMs' in claimed) throw new Error('lease held by someone else');
      if (claimed.events.length === 0) break;
      for (const event of claimed.events) {
        out.push(JSON.parse(event.body) as Event);
        await feed.ack(stream, 'reader', event.entry);
      }
    }
  }
  return out;
}

export const UNREAD_WINDOW_MS = 300;

/** What Directory and EventFeed promise over the state every node writes (see directory.ts, event-feed.ts). */
export function clusterStateContract(name: string, makeHarness: () => Promise<ClusterStateHarness>): void {
  describe(`${name} (cluster state contract)`, () => {
    const nodes = twoNodes(makeHarness);
    let harness: ClusterStateHarness, a: Broker, b: Broker, la: RecordingListener, lb: RecordingListener;
    beforeEach(() => ({ harness, a, b, la, lb } = nodes));

    it('records each transition once however many nodes take part, with unique ids, in order per room and per user', async () => {
      const feed = harness.feed();
      await a.presence.setUserConnections('ann', 1);
      await b.presence.setUserConnections('ann', 2);
      await a.presence.setUserConnections('ann', 3);
      await a.presence.join('r', 'ann', { connections: 1 });
      await b.presence.join('r', 'ann', { connections: 2 });
      await b.presence.join('r', 'bob', { connections: 1 });
      const { id } = await a.append({ room: 'r', user: 'ann', head: '{"type":"message","room":"r","id":"', body: '","user":"ann","text":"hi","ts":5}', ts: 5 });
      await a.presence.leave('r', 'ann');
      await b.presence.leave('r', 'bob');
      await b.presence.leave('r', 'ann');
      await a.presence.setUserConnections('ann', 0);
      await b.presence.setUserConnections('ann', 0);
      const events = await drain(feed);
      expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
      const about = (type: string) => events.filter((e) => e.type === type).map((e) => e.data);
      expect(about('user.online')).toEqual([{ user: 'ann' }]);
      expect(about('user.offline')).toEqual([{ user: 'ann' }]);
      expect(about('room.occupied')).toEqual([{ room: 'r' }]);
      expect(about('room.vacated')).toEqual([{ room: 'r' }]);
      expect(about('member.joined')).toEqual([{ room: 'r', user: 'ann' }, { room: 'r', user: 'bob' }]);
      expect(about('member.left')).toEqual([{ room: 'r', user: 'bob' }, { room: 'r', user: 'ann' }]);
      expect(about('message.created')).toEqual([{ room: 'r', message: { type: 'message', room: 'r', id, user: 'ann', text: 'hi', ts: 5 } }]);
      const roomOrder = events.filter((e) => e.data.room === 'r').map((e) => e.type);
      expect(roomOrder).toEqual(['room.occupied', 'member.joined', 'member.joined', 'message.created', 'member.left', 'member.left', 'room.vacated']);
      expect(events.filter((e) => e.data.user === 'ann' && !('room' in e.data)).map((e) => e.type)).toEqual(['user.online', 'user.offline']);
      for (const e of events) expect(CLUSTER_EVENT_TYPES).toContain(e.type);
      expect(await feed.backlog()).toEqual([]);
    });

    it('leases a stream to one reader at a time; only the holder acknowledges', async () => {
      const feed = harness.feed();
      await a.presence.setUserConnections('cat', 1);
      const [{ stream, pending }] = (await feed.backlog()) as unknown as [{ stream: string; pending: number }];
      expect(pending).toBe(1);
      const first = await feed.claim(stream, 'one', 5000, 10);
      if ('heldForMs' in first) throw new Error('expected the lease');
      const held = await feed.claim(stream, 'two', 5000, 10);
      expect('heldForMs' in held && held.heldForMs > 0 && held.heldForMs <= 5000).toBe(true);
      expect(await feed.ack(stream, 'two', first.events[0]!.entry)).toBeNull();
      expect(await feed.ack(stream, 'one', first.events[0]!.entry)).toBe(0);
      // The last acknowledgement gave the lease up with the stream.
      await b.presence.setUserConnections('cid', 1);
      const next = await feed.claim(stream, 'two', 5000, 10);
      expect('events' in next && next.events.length).toBe(1);
      await feed.release(stream, 'two');
      expect('events' in (await feed.claim(stream, 'one', 5000, 10))).toBe(true);
    });

    it('tells a reader of a stream that got its first event', async () => {
      const feed = harness.feed();
      const woken: string[] = [];
      await feed.listen((stream) => woken.push(stream));
      await a.presence.setUserConnections('dee', 1);
      await eventually(() => woken.length === 1, 'a wake-up');
      expect((await feed.backlog()).map((s) => s.stream)).toEqual(woken);
    });

    it('answers who is where from the shared state', async () => {
      const directory = harness.directory();
      await a.presence.setUserConnections('eve', 2);
      await b.presence.setUserConnections('eve', 1);
      await a.presence.join('x1', 'eve', { connections: 2 });
      await b.presence.join('x1', 'eve', { connections: 1 });
      await b.presence.join('x1', 'fay', { connections: 1 });
      await a.presence.join('x2', 'eve', { connections: 1 });
      await a.presence.join('x3', 'fay', { connections: 1 });
      expect(await directory.roomMembers('x1', undefined, 10)).toEqual({ members: [{ user: 'eve', connections: 3 }, { user: 'fay', connections: 1 }], count: 2 });
      expect(await directory.roomMembers('x1', undefined, 1)).toEqual({ members: [{ user: 'eve', connections: 3 }], count: 2, next: 'eve' });
      expect(await directory.roomMembers('x1', 'eve', 1)).toEqual({ members: [{ user: 'fay', connections: 1 }], count: 2 });
      expect(await directory.userPresence('eve')).toEqual({ online: true, connections: 3, rooms: ['x1', 'x2'] });
      expect(await directory.userPresence('nobody')).toEqual({ online: false, connections: 0, rooms: [] });
      const page1 = await directory.activeRooms(undefined, 2);
      expect(page1).toEqual({ rooms: [{ room: 'x1', members: 2, connections: 4 }, { room: 'x2', members: 1, connections: 1 }], next: 'x2' });
      expect(await directory.activeRooms(page1.next, 2)).toEqual({ rooms: [{ room: 'x3', members: 1, connections: 1 }] });
      await a.presence.leave('x2', 'eve');
      expect((await directory.activeRooms(undefined, 10)).rooms.map((r) => r.room)).toEqual(['x1', 'x3']);
      expect((await directory.userPresence('eve')).rooms).toEqual(['x1']);
      await a.presence.setUserConnections('eve', 0);
      expect(await directory.userPresence('eve')).toMatchObject({ online: true, connections: 1 });
    });

    it('holds a token revocation made on one node on every node, moving only forward, until it lapses', async () => {
      const [here, there] = await Promise.all([harness.revocations(), harness.revocations()]);
      expect(there.revokedBefore('gus')).toBeUndefined();
      await here.revoke('gus', 1234, 300);
      expect(here.revokedBefore('gus')).toBe(1234);
      await eventually(() => there.revokedBefore('gus') === 1234, 'the other node hears of it');
      await there.revoke('gus', 1000, 300);
      expect(there.revokedBefore('gus')).toBe(1234);
      await new Promise((r) => setTimeout(r, 400));
      expect(here.revokedBefore('gus')).toBeUndefined();
      expect(there.revokedBefore('gus')).toBeUndefined();
    });

    it('hands a user command to every node subscribed to the user and counts them', async () => {
      await a.subscribeUser('hal');
      await b.subscribeUser('hal');
      expect(await a.sendUserCommand('hal', '{"op":"x"}')).toBe(2);
      await eventually(() => la.userCommands.length === 1 && lb.userCommands.length === 1, 'both nodes');
      expect(la.userCommands).toEqual(['hal:{"op":"x"}']);
      expect(la.userFrames).toEqual([]);
      expect(await a.sendUserCommand('nobody', '{}')).toBe(0);
    });

    it('hands a payload to the node whose inbox it names, in order, and says 0 when no node has it', async () => {
      await b.subscribeNode('inbox-b');
      expect(await a.sendToNode('inbox-b', 'first ✓')).toBe(1);
      expect(await a.sendToNode('inbox-b', 'second')).toBe(1);
      await eventually(() => lb.nodeMessages.length === 2, 'both payloads');
      expect(lb.nodeMessages).toEqual(['first ✓', 'second']);
      expect(la.nodeMessages).toEqual([]);
      expect(await a.sendToNode('inbox-gone', 'third')).toBe(0);
    });

    it('tells each offline member with unread messages once per window, from one node, never the sender or a connected member', async () => {
      const membership = harness.membership();
      const [na, nb] = [await harness.notices(), await harness.notices()];
      const feed = harness.feed();
      await membership.add('club', ['alice', 'bob', 'carol']);
      await b.presence.setUserConnections('bob', 1);
      const post = (text: string, key?: string) => a.append({
        room: 'club', user: 'alice', head: '{"type":"message","room":"club","id":"', body: `","user":"alice","text":"${text}","ts":5}`, ts: 5,
        ...(key !== undefined && { idempotencyKey: key }),
      });
      await post('one', 'k');
      await post('one', 'k');
      const { id } = await post('two');
      expect(await na.claimDue(10)).toEqual([]); // the window has not passed
      await new Promise((resolve) => setTimeout(resolve, UNREAD_WINDOW_MS + 50));
      const claims = await Promise.all([na.claimDue(10), nb.claimDue(10)]);
      expect(claims.flat()).toEqual(['club']);
      const head = '{"type":"message","room":"club","id":"';
      expect(await na.notify('club', head)).toBe(1);
      const told = (await drain(feed)).filter((e) => e.type === 'member.unread').map((e) => e.data);
      expect(told).toEqual([{ room: 'club', user: 'carol', unread: 2, read: '0-0', last: { type: 'message', room: 'club', id, user: 'alice', text: 'two', ts: 5 } }]);
      await post('three');
      expect(await na.claimDue(10)).toEqual([]);
      await new Promise((resolve) => setTimeout(resolve, UNREAD_WINDOW_MS + 50));
      expect(await nb.claimDue(10)).toEqual(['club']);
      await nb.notify('club', head);
      expect((await drain(feed)).filter((e) => e.type === 'member.unread').map((e) => [e.data.user, e.data.unread])).toEqual([['carol', 3]]);
      await b.presence.setUserConnections('bob', 0);
    });
  });
}
