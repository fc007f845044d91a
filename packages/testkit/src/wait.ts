export { sleep, waitFor } from '@chat/proc';

/** A Redis key prefix no other test run shares. */
export function uniquePrefix(label = 't'): string {
  return `${label}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 7)}:`;
}
