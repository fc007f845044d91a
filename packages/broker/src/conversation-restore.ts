/**
 * Putting members-only rooms back after Redis lost them (a restart without
 * persistence, a restore from an old snapshot): their members, read positions
 * and message numbers, from a copy kept elsewhere (the archive). Redis carries
 * a mark that it holds what it should; a Redis that comes back without it lost
 * its conversations, and nothing may use them until they are back.
 */
export interface ConversationRestore {
  /** Whether Redis holds its conversations (the mark is there). */
  intact(): Promise<boolean>;

  /** Writes a room back, only if Redis has no record of it; resolves with whether it wrote. */
  restore(record: ConversationRecord): Promise<boolean>;

  /** Marks Redis as holding its conversations (after a restore, or on a new deployment). */
  markIntact(): Promise<void>;
}

export interface ConversationRecord {
  room: string;
  /** "a|b" for a direct conversation. */
  pair?: string;
  /** The room's message number: numbering goes on after it. */
  total: number;
  /** Its newest message (for the room list's order). */
  last?: { id: string };
  members: Array<{ user: string; read: string; number: number }>;
}
