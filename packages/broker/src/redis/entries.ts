import type { ChangeKind, StoredMessage } from '../broker.js';

/**
 * A stream entry as a StoredMessage. A message's fields are `b` (body) and, in
 * a members-only room, `n` (its number); a change's `c` (body), `k` (kind),
 * `t` (target), and for a delete `a` and `s` (see change-scripts.ts).
 */
export function storedEntry(id: string, fields: readonly string[]): StoredMessage {
  if (fields[0] === 'b') return fields[2] === 'n' ? { id, body: fields[1]!, number: Number(fields[3]) } : { id, body: fields[1]! };
  const entry: StoredMessage = { id, body: fields[1] ?? '', change: { kind: fields[3] as ChangeKind, target: fields[5] ?? '' } };
  if (fields[6] === 'a') {
    entry.change!.author = fields[7];
    entry.change!.sentAt = Number(fields[9]);
  }
  return entry;
}
