import { compareIds, type JoinedFrame } from '@chat/protocol';
import { TestClient, sleep } from '@chat/testkit';
import { expect } from 'vitest';

/** Sends a message every `everyMs`, recording the ids of those acknowledged, until stopped or its connection closes. */
export function steadySender(client: TestClient, room: string, everyMs: number) {
  let n = 0;
  let running = true;
  const refs = new Set<string>();
  const tag = Math.random().toString(36).slice(2, 7); // refs of its own, beside other senders on the client
  const loop = (async () => {
    while (running && client.closeInfo === undefined) {
      const ref = `${tag}-${++n}`;
      refs.add(ref);
      client.send({ type: 'send', room, text: `steady ${n}`, ref });
      await sleep(everyMs);
    }
  })();
  return {
    acked: () => client.ofType('ack').filter((a) => a.ref !== undefined && refs.has(a.ref)).map((a) => a.id),
    refused: () => client.ofType('error').filter((e) => e.ref !== undefined && refs.has(e.ref)).length,
    async stop() {
      running = false;
      await loop;
      await sleep(1500); // replies to the last sends (a WAIT may take its full timeout)
    },
  };
}

/** A rejoin with `since`, as a reconnecting client makes it: what it was told and what it got. */
export interface Rejoin {
  since: string;
  joined: JoinedFrame;
}

/** Connects `user` to `wsUrl` and joins `room` with `since`; the client is closed again. */
export async function rejoin(wsUrl: string, user: string, room: string, since: string): Promise<Rejoin> {
  const client = await TestClient.connect(wsUrl, user);
  try {
    const joined = await client.request({ type: 'join', room, since });
    if (joined.type !== 'joined') throw new Error(`${user}: join refused: ${JSON.stringify(joined)}`);
    return { since, joined };
  } finally {
    await client.close();
  }
}

/** Every id stored in `room` now, oldest first (JOIN_HISTORY must cover the room). */
export async function storedIds(wsUrl: string, room: string): Promise<string[]> {
  const client = await TestClient.connect(wsUrl, 'auditor');
  try {
    const joined = await client.request({ type: 'join', room });
    if (joined.type !== 'joined') throw new Error(`auditor: join refused: ${JSON.stringify(joined)}`);
    return joined.history.map((m) => m.id);
  } finally {
    await client.close();
  }
}

/**
 * What `recovered` promises: a rejoin told `true` got every stored message
 * after its `since`, and no acknowledged message after its `since` is missing
 * from what is stored. A rejoin told `false` may get anything stored after `since`.
 */
export function expectTruthful(rejoins: readonly Rejoin[], acked: readonly string[], stored: readonly string[]): void {
  const kept = new Set(stored);
  for (const { since, joined } of rejoins) {
    const got = joined.history.map((m) => m.id);
    expect(got, `rejoin from ${since}: in order, each once`).toEqual([...new Set(got)].sort(compareIds));
    const storedAfter = stored.filter((id) => compareIds(id, since) > 0);
    expect(got.every((id) => kept.has(id)), `rejoin from ${since}: only stored messages`).toBe(true);
    if (joined.recovered !== true) continue;
    expect(got, `rejoin from ${since} told recovered: every stored message after it`).toEqual(storedAfter);
    const missing = acked.filter((id) => compareIds(id, since) > 0 && !kept.has(id));
    expect(missing, `rejoin from ${since} told recovered over acknowledged messages that are gone`).toEqual([]);
  }
}

/**
 * A member that was shown messages no longer stored was told so: closed with 1013, to rejoin with since.
 * The close travels on the member's own socket, which nothing orders against what the test saw on
 * others: wait for it.
 */
export async function expectToldOfLoss(member: TestClient, room: string, stored: readonly string[]): Promise<void> {
  const kept = new Set(stored);
  const seenLost = member.messages(room).filter((m) => !kept.has(m.id));
  if (seenLost.length === 0) return;
  await member.until(() => member.closeInfo !== undefined, { what: `the 1013 of a member that saw ${seenLost.length} lost messages`, timeoutMs: 10_000 });
  expect(member.closeInfo?.code, `${member.label} saw ${seenLost.length} lost messages`).toBe(1013);
}
