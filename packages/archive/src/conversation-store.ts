import type pg from 'pg';
import { joinId, splitId } from './ids.js';

/** PostgreSQL's code for a table that does not exist. */
const UNDEFINED_TABLE = '42P01';

/** A members-only room as the archive keeps it, for putting it back after Redis lost it. */
export interface StoredConversation {
  room: string;
  /** "a|b" for a direct conversation. */
  pair?: string;
  /** The room's newest archived message number (0 when none): its numbering goes on from here. */
  total: number;
  /** Its newest archived message, for the room list. */
  last?: { id: string; body: string };
  members: StoredMember[];
}

export interface StoredMember {
  user: string;
  /** The newest of the position they moved to (read) and their own newest archived message. */
  read: string;
  /** The room's message number at that position. */
  number: number;
}

/**
 * Members-only rooms' members and read positions in PostgreSQL, beside the
 * archived messages. Redis is where they are used; this copy is what puts them
 * back after Redis lost them. Every write is idempotent, and a read position
 * only moves forward here too.
 */
export class ConversationStore {
  constructor(private readonly pool: pg.Pool) {}

  /** Records the room as members-only (with its pair, for a direct conversation) and adds members reading from `read`. */
  async addMembers(room: string, users: readonly string[], read: string, pair?: string): Promise<void> {
    const [ms, seq] = splitId(read);
    await this.pool.query(
      `WITH room AS (INSERT INTO chat_conversations (room, pair) VALUES ($1, $2) ON CONFLICT (room) DO NOTHING)
       INSERT INTO chat_conversation_members (room, user_id, read_ms, read_seq)
       SELECT $1, u, $4, $5 FROM unnest($3::text[]) AS u ON CONFLICT (room, user_id) DO NOTHING`,
      [room, pair ?? null, users, ms, seq]);
  }

  async removeMembers(room: string, users: readonly string[]): Promise<void> {
    await this.pool.query('DELETE FROM chat_conversation_members WHERE room = $1 AND user_id = ANY($2::text[])', [room, users]);
  }

  /** Moves a member's read position forward to `id` (an older one changes nothing). */
  async moveRead(room: string, user: string, id: string): Promise<void> {
    const [ms, seq] = splitId(id);
    await this.pool.query(
      'UPDATE chat_conversation_members SET read_ms = $3, read_seq = $4 WHERE room = $1 AND user_id = $2 AND (read_ms, read_seq) < ($3, $4)',
      [room, user, ms, seq]);
  }

  /** The names of every members-only room; none in an archive whose schema is not made yet (a new one: nothing was kept). */
  async rooms(): Promise<string[]> {
    try {
      const { rows } = await this.pool.query<{ room: string }>('SELECT room FROM chat_conversations ORDER BY room');
      return rows.map((r) => r.room);
    } catch (err) {
      if ((err as { code?: string }).code === UNDEFINED_TABLE) return [];
      throw err;
    }
  }

  /**
   * One room as it should be: its members, each at the newer of their stored
   * position and their own newest archived message (a sender's message moves
   * their position), numbered by the archived messages.
   */
  async load(room: string): Promise<StoredConversation | undefined> {
    const { rows: [head] } = await this.pool.query<{ pair: string | null; total: string | null; ms: string | null; seq: string | null; body: string | null }>(
      `SELECT c.pair, (SELECT max(number) FROM chat_messages WHERE room = c.room) AS total, m.ms, m.seq, m.body
       FROM chat_conversations c
       LEFT JOIN LATERAL (SELECT ms, seq, body FROM chat_messages WHERE room = c.room ORDER BY ms DESC, seq DESC LIMIT 1) m ON true
       WHERE c.room = $1`, [room]);
    if (head === undefined) return undefined;
    // The stored body is the frame after the id: `","user":"<user>",...`, so its fifth quote-separated part is the sender.
    const { rows } = await this.pool.query<{ user_id: string; ms: string; seq: string; number: string | null; lowest: string | null }>(
      `WITH own AS (
         SELECT split_part(body, '"', 5) AS user_id, max(ARRAY[ms, seq]) AS at
         FROM chat_messages WHERE room = $1 AND number IS NOT NULL GROUP BY 1),
       position AS (
         SELECT cm.user_id,
                CASE WHEN own.at IS NOT NULL AND own.at > ARRAY[cm.read_ms, cm.read_seq] THEN own.at ELSE ARRAY[cm.read_ms, cm.read_seq] END AS at
         FROM chat_conversation_members cm LEFT JOIN own ON own.user_id = cm.user_id
         WHERE cm.room = $1)
       SELECT p.user_id, p.at[1] AS ms, p.at[2] AS seq,
              (SELECT number FROM chat_messages WHERE room = $1 AND number IS NOT NULL AND (ms, seq) <= (p.at[1], p.at[2]) ORDER BY ms DESC, seq DESC LIMIT 1) AS number,
              (SELECT number FROM chat_messages WHERE room = $1 AND number IS NOT NULL ORDER BY ms, seq LIMIT 1) AS lowest
       FROM position p ORDER BY p.user_id`, [room]);
    return {
      room,
      ...(head.pair !== null && { pair: head.pair }),
      total: Number(head.total ?? 0),
      ...(head.ms !== null && { last: { id: joinId(head.ms, head.seq!), body: head.body! } }),
      // A position before every archived number counts as the oldest one's predecessor, as in Redis.
      members: rows.map((r) => ({ user: r.user_id, read: joinId(r.ms, r.seq), number: r.number !== null ? Number(r.number) : Math.max(0, Number(r.lowest ?? 1) - 1) })),
    };
  }
}
