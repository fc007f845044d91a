/** Partitions are weeks of `ms`, Monday 00:00 UTC to the next. */
const WEEK_MS = 7 * 24 * 3600 * 1000;
/** 1970-01-01 was a Thursday: Monday 1970-01-05 starts week 0. */
const FIRST_MONDAY_MS = 4 * 24 * 3600 * 1000;

export function weekStart(ms: number): number {
  return FIRST_MONDAY_MS + Math.floor((ms - FIRST_MONDAY_MS) / WEEK_MS) * WEEK_MS;
}

export function nextWeek(start: number): number {
  return start + WEEK_MS;
}

export function partitionName(start: number): string {
  return `chat_messages_w${new Date(start).toISOString().slice(0, 10).replaceAll('-', '')}`;
}

/** The week starts covering [fromMs, toMs]. */
export function weeksBetween(fromMs: number, toMs: number): number[] {
  const out: number[] = [];
  for (let start = weekStart(fromMs); start <= toMs; start = nextWeek(start)) out.push(start);
  return out;
}
