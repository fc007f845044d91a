/**
 * The schema, as numbered migrations applied in order at start (see migrate.ts).
 * A released migration is never edited: a change is a new one.
 *
 * Messages are keyed by (room, ms, seq), the two parts of the id: one room's
 * rows are adjacent in the primary key, in id order, so a page from anywhere in
 * a room's history is one range scan of that index. The table is partitioned by
 * `ms` (a week per partition) so that retention drops whole partitions; `room`
 * leads every key, so a distributed PostgreSQL (Citus) can shard it by room.
 */
export const MIGRATIONS: ReadonlyArray<{ version: number; name: string; sql: string }> = [
  {
    version: 1,
    name: 'messages and archive watermarks',
    sql: `
CREATE TABLE chat_messages (
  room text   NOT NULL,
  ms   bigint NOT NULL,
  seq  bigint NOT NULL,
  -- the stored frame after the id; the frame is head(room) + id + body
  body text   NOT NULL,
  PRIMARY KEY (room, ms, seq)
) PARTITION BY RANGE (ms);

-- Per room: everything up to (ms, seq) is archived, with no gap but the losses recorded in
-- Redis; from_start: the archive began at the room's first message (else at its first row).
CREATE TABLE chat_archive_rooms (
  room       text        PRIMARY KEY,
  ms         bigint      NOT NULL,
  seq        bigint      NOT NULL,
  from_start boolean     NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    version: 2,
    name: 'conversations: message numbers, members and read positions',
    sql: `
-- A members-only room's message number (see the broker's conversation scripts),
-- null for messages of open rooms: after Redis lost its counters, the newest
-- archived number is where the room's numbering goes on.
ALTER TABLE chat_messages ADD COLUMN number bigint;

-- Members-only rooms; pair is "a|b" for a direct conversation.
CREATE TABLE chat_conversations (
  room text PRIMARY KEY,
  pair text
);

-- Their stored members, each with the read position they moved to themselves
-- (positions their own messages moved are in chat_messages).
CREATE TABLE chat_conversation_members (
  room     text   NOT NULL,
  user_id  text   NOT NULL,
  read_ms  bigint NOT NULL,
  read_seq bigint NOT NULL,
  PRIMARY KEY (room, user_id)
);
`,
  },
  {
    version: 3,
    name: 'changes of messages: deletes and reactions',
    sql: `
-- A deleted message stays as a tombstone (its body names the author and time,
-- with no text); an edited one has its current text in body, with "edited".
ALTER TABLE chat_messages ADD COLUMN deleted boolean NOT NULL DEFAULT false;

-- Who reacts to which message with what: a set, as in Redis.
CREATE TABLE chat_reactions (
  room     text   NOT NULL,
  ms       bigint NOT NULL,
  seq      bigint NOT NULL,
  reaction text   NOT NULL,
  user_id  text   NOT NULL,
  PRIMARY KEY (room, ms, seq, reaction, user_id)
);
`,
  },
];
