/** A message id `<ms>-<seq>` as the two columns it is stored in (both fit a bigint for any real clock). */
export function splitId(id: string): [ms: string, seq: string] {
  const dash = id.indexOf('-');
  return [id.slice(0, dash), id.slice(dash + 1)];
}

export function joinId(ms: string, seq: string): string {
  return `${ms}-${seq}`;
}
