import { waitFor } from '@chat/testkit';

/** One command on one local Redis process, as the testkit's topology handles run them. */
type Command = (port: number, ...args: Array<string | number>) => Promise<string>;

function offset(info: string, field: string): number {
  const line = info.split(/\r?\n/).find((l) => l.startsWith(`${field}:`));
  return Number(line?.slice(field.length + 1) ?? Number.NaN);
}

/** Resolves once `replica` has applied every write `primary` had when this was called. */
export async function replicaCaughtUp(command: Command, primary: number, replica: number): Promise<void> {
  const target = offset(await command(primary, 'INFO', 'replication'), 'master_repl_offset');
  await waitFor(async () => offset(await command(replica, 'INFO', 'replication'), 'master_repl_offset') >= target,
    { what: `replica ${replica} to catch up with ${primary}`, intervalMs: 20 });
}

/**
 * Turns `replica` into a lagging one, deterministically: it is cut off and
 * cannot resync (its AUTH to the primary fails), so every write from now on
 * exists on the primary only, as in the window of asynchronous replication
 * that a failover can fall into.
 */
export async function cutReplication(command: Command, primary: number, replica: number): Promise<void> {
  await command(replica, 'CONFIG', 'SET', 'masterauth', 'not-the-password');
  await command(primary, 'CLIENT', 'KILL', 'TYPE', 'replica');
  await waitFor(async () => (await command(replica, 'INFO', 'replication')).includes('master_link_status:down'),
    { what: `replica ${replica} to be cut off`, intervalMs: 20 });
}
