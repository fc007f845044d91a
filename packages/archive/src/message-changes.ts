import type pg from 'pg';
import { splitId } from './ids.js';

/** What a change entry changes (the broker's StoredChange). */
export interface ArchivedChange {
  kind: 'edit' | 'delete' | 'reaction';
  target: string;
  /** A delete's: the deleted message's author and ts. */
  author?: string;
  sentAt?: number;
}

/** A message's body as a tombstone: its author and time, no text. */
export function tombstoneBody(author: string, sentAt: number): string {
  return `","user":${JSON.stringify(author)},"text":"","ts":${sentAt},"deleted":true}`;
}

/**
 * Applies one change, as its entry in the room's stream says, on a client in
 * a transaction. Each is idempotent and they come in stream order, so a batch
 * applied twice (a crash before its watermark moved) ends the same.
 */
export async function applyChange(client: pg.PoolClient, room: string, body: string, change: ArchivedChange): Promise<void> {
  const [ms, seq] = splitId(change.target);
  const frame = JSON.parse(`{"id":"0-0${body}`) as { user: string; text?: string; ts: number; reaction?: string; op?: string };
  if (change.kind === 'edit') {
    // The stored body keeps its author and time; the text becomes the edit's.
    await client.query(
      `UPDATE chat_messages SET body = $4 || substring(body from ',"ts":[0-9]+') || ',"edited":' || $5 || '}'
       WHERE room = $1 AND ms = $2 AND seq = $3 AND NOT deleted`,
      [room, ms, seq, `","user":${JSON.stringify(frame.user)},"text":${JSON.stringify(frame.text ?? '')}`, frame.ts]);
  } else if (change.kind === 'delete') {
    await client.query(
      `INSERT INTO chat_messages (room, ms, seq, body, deleted) VALUES ($1, $2, $3, $4, true)
       ON CONFLICT (room, ms, seq) DO UPDATE SET body = EXCLUDED.body, deleted = true`,
      [room, ms, seq, tombstoneBody(change.author ?? frame.user, change.sentAt ?? 0)]);
    await client.query('DELETE FROM chat_reactions WHERE room = $1 AND ms = $2 AND seq = $3', [room, ms, seq]);
  } else if (frame.op === 'add') {
    await client.query(
      `INSERT INTO chat_reactions (room, ms, seq, reaction, user_id)
       SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM chat_messages WHERE room = $1 AND ms = $2 AND seq = $3 AND deleted)
       ON CONFLICT DO NOTHING`,
      [room, ms, seq, frame.reaction, frame.user]);
  } else {
    await client.query('DELETE FROM chat_reactions WHERE room = $1 AND ms = $2 AND seq = $3 AND reaction = $4 AND user_id = $5',
      [room, ms, seq, frame.reaction, frame.user]);
  }
}

/** Reaction counts (and the reader's own) of some messages of a room: id -> the text to splice into its body. */
export async function reactionsOf(pool: pg.Pool, room: string, ids: readonly string[], reader: string | undefined): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  if (ids.length === 0) return found;
  const { rows } = await pool.query<{ ms: string; seq: string; reaction: string; n: number; mine: boolean }>(
    `SELECT ms, seq, reaction, count(*)::int AS n, bool_or(user_id = $4) AS mine FROM chat_reactions
     WHERE room = $1 AND (ms, seq) IN (SELECT * FROM unnest($2::bigint[], $3::bigint[])) GROUP BY ms, seq, reaction ORDER BY reaction`,
    [room, ids.map((id) => splitId(id)[0]), ids.map((id) => splitId(id)[1]), reader ?? '']);
  const byId = new Map<string, { counts: Record<string, number>; mine: string[] }>();
  for (const r of rows) {
    const id = `${r.ms}-${r.seq}`;
    let entry = byId.get(id);
    if (entry === undefined) byId.set(id, (entry = { counts: {}, mine: [] }));
    entry.counts[r.reaction] = r.n;
    if (r.mine) entry.mine.push(r.reaction);
  }
  for (const [id, { counts, mine }] of byId) {
    found.set(id, `,"reactions":${JSON.stringify(counts)}${mine.length > 0 ? `,"mine":${JSON.stringify(mine)}` : ''}`);
  }
  return found;
}
