import type { AckFrame, JoinedFrame } from '@chat/protocol';
import type { TestClient } from '@chat/testkit';
import { describe, expect, it } from 'vitest';
import { trackTestGateways, type TestGateway } from './harness.js';

/*
 * The stream of a room losing messages it had already delivered: Redis restarted
 * without them, or failed over to a replica that lacked them (simulated on the
 * in-memory hub). Whoever may have missed them is told: members connected are
 * closed with 1013, and every rejoin from before the loss says recovered: false.
 */
const { gateway, connect, twoNodesInRoom } = trackTestGateways();

async function send(client: TestClient, room: string, text: string): Promise<string> {
  const reply = await client.request({ type: 'send', room, text });
  if (reply.type !== 'ack') throw new Error(`send refused: ${JSON.stringify(reply)}`);
  return (reply as AckFrame).id;
}

async function rejoin(g: TestGateway, user: string, room: string, since: string): Promise<JoinedFrame> {
  const client = await connect(g, user);
  const joined = await client.request({ type: 'join', room, since });
  if (joined.type !== 'joined') throw new Error(`join refused: ${JSON.stringify(joined)}`);
  return joined;
}

/** A writer on one node, a reader on another, both in `room`, with `count` messages both have seen. */
const twoNodes = (room: string, count: number) => twoNodesInRoom(room, Array.from({ length: count }, (_, i) => `m${i}`));

describe('a room whose stream lost messages its members had seen', () => {
  it('Redis restarted empty: members are closed 1013, and nobody rejoining from before is told recovered', async () => {
    const { hub, g1, g2, writer, reader, ids } = await twoNodes('r', 4);
    for (const g of [g1, g2]) g.broker.setAvailable(false);
    hub.forgetStored();
    for (const g of [g1, g2]) g.broker.setAvailable(true);

    for (const c of [writer, reader]) expect((await c.closed).code).toBe(1013);
    for (const since of [ids[3]!, ids[0]!]) {
      const joined = await rejoin(g2, 'back', 'r', since);
      expect(joined).toMatchObject({ recovered: false, history: [] });
    }
    // The loss is on record, so a later rejoin is told too, on any node.
    const after = await connect(g1, 'after');
    await after.request({ type: 'join', room: 'r' });
    const fresh = await send(after, 'r', 'after the restart');
    expect(await rejoin(g2, 'late', 'r', ids[2]!)).toMatchObject({ recovered: false, history: [{ id: fresh }] });
    expect(await rejoin(g2, 'later', 'r', fresh)).toMatchObject({ recovered: true, history: [] });
  });

  it('failover onto a lagging replica: found at the next append, told to every node before that message', async () => {
    const { hub, g1, g2, writer, reader, ids } = await twoNodes('f', 5);
    hub.loseNewest('f', 2); // the promoted replica lacked m3 and m4
    const sending = writer.request({ type: 'send', room: 'f', text: 'after' }).catch(() => undefined);
    for (const c of [writer, reader]) expect((await c.closed).code).toBe(1013);
    // The reader was closed before 'after' could reach it: its last id is still m4.
    expect(reader.messages('f').map((m) => m.text)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    await sending;
    for (const [since, recovered] of [[ids[4]!, false], [ids[2]!, false], [ids[1]!, false]] as const) {
      expect(await rejoin(g1, 'back', 'f', since), since).toMatchObject({ recovered });
    }
    expect((await rejoin(g2, 'back', 'f', ids[1]!)).history.map((m) => m.text)).toEqual(['m2', 'after']);
  });

  it('failover found by the prev chain when the sender\'s node never saw the lost messages', async () => {
    const { hub, g1, writer, reader, ids } = await twoNodes('p', 4);
    hub.loseNewest('p', 2);
    // A third node joins after the loss: its watermark is the stream's newest, so its append finds nothing.
    const g3 = await gateway({ NODE_ID: 'n3' }, hub);
    const newcomer = await connect(g3, 'newcomer');
    await newcomer.request({ type: 'join', room: 'p' });
    await send(newcomer, 'p', 'from n3');
    for (const c of [writer, reader]) expect((await c.closed).code).toBe(1013);
    expect(await rejoin(g1, 'back', 'p', ids[3]!)).toMatchObject({ recovered: false });
    expect(await rejoin(g1, 'back', 'p', ids[1]!)).toMatchObject({ recovered: false });
  });

  it('a node whose live stream never carried the lost messages is told by the node that delivered them', async () => {
    const { hub, writer, reader, g2, ids } = await twoNodes('d', 3);
    g2.broker.dropRoomMessages(2); // the reader's node misses m3 and m4 live...
    ids.push(await send(writer, 'd', 'm3'), await send(writer, 'd', 'm4'));
    hub.loseNewest('d', 2); // ...and then the stream loses them too
    const sending = writer.request({ type: 'send', room: 'd', text: 'after' }).catch(() => undefined);
    // Without the report, 'after' (whose prev is m2) would look continuous to the reader's node.
    expect((await reader.closed).code).toBe(1013);
    expect(reader.messages('d').map((m) => m.text)).toEqual(['m0', 'm1', 'm2']);
    await sending;
    expect(await rejoin(g2, 'reader', 'd', ids[2]!)).toMatchObject({ recovered: false });
  });

  it('a member who joins after the loss was marked is not resynced for it', async () => {
    const { hub, g1, g2, writer, ids } = await twoNodes('k', 3);
    hub.loseNewest('k', 1);
    await writer.request({ type: 'send', room: 'k', text: 'marks the loss' }).catch(() => undefined);
    await writer.closed;
    const member = await connect(g2, 'member');
    expect(await member.request({ type: 'join', room: 'k', since: ids[0]! })).toMatchObject({ recovered: false });
    const other = await connect(g1, 'other');
    await other.request({ type: 'join', room: 'k' });
    await send(other, 'k', 'carry on');
    await member.waitFor((f) => f.type === 'message' && f.text === 'carry on');
    expect(member.closeInfo).toBeUndefined();
  });
});
