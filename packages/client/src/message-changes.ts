import type { ChangeEventFrame, MessageFrame } from './protocol.js';

/**
 * A message as a change leaves it: the edited text with `edited`, a tombstone
 * (no text, no reactions) for a delete, the reaction's count and, for `self`'s
 * own reaction, `mine`. A change of another message returns `message` itself.
 * Applying a change twice gives the same message: a rejoin's replay may bring
 * one the message already shows.
 */
export function applyChange(message: MessageFrame, change: ChangeEventFrame, self: string): MessageFrame {
  if (message.id !== change.target || message.room !== change.room || message.deleted === true) return message;
  if (change.type === 'delete') {
    const { reactions: _reactions, mine: _mine, edited: _edited, ...kept } = message;
    return { ...kept, text: '', deleted: true };
  }
  if (change.type === 'edit') return { ...message, text: change.text, edited: change.ts };
  const reactions = { ...message.reactions };
  if (change.count > 0) reactions[change.reaction] = change.count;
  else delete reactions[change.reaction];
  let mine = message.mine ?? [];
  if (change.user === self) {
    mine = mine.filter((r) => r !== change.reaction);
    if (change.op === 'add') mine = [...mine, change.reaction];
  }
  const { reactions: _r, mine: _m, ...rest } = message;
  return { ...rest, ...(Object.keys(reactions).length > 0 && { reactions }), ...(mine.length > 0 && { mine }) };
}
