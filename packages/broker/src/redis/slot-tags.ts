import { keySlot } from './slot.js';

let tags: string[] | undefined;

/**
 * A hash tag that lands on `slot`: the smallest decimal whose slot it is. A key
 * `...{tag}...` then lives on that slot, so a script of any key of the slot may
 * touch it. The table is built once (about 30 ms).
 */
export function slotTag(slot: number): string {
  if (tags === undefined) {
    const table = new Array<string>(16_384);
    let left = table.length;
    for (let n = 0; left > 0; n++) {
      const s = keySlot(String(n));
      if (table[s] === undefined) {
        table[s] = String(n);
        left--;
      }
    }
    tags = table;
  }
  return tags[slot]!;
}
