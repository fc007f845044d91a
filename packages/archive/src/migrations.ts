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
];
