import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { cpuSeconds } from '@chat/proc';
import { describeStorm, runStorm, type StormOptions } from './storm.js';

export const STORM_USAGE = `Usage: npm run load -- storm --url URL --url URL ... (--kill PID | --term PID | --roll PID) [options]

  A reconnect storm: --clients library users connect to the first --url (with the
  others as fallbacks), a control group chats on the others; then one gateway is
  SIGKILLed (--kill) or SIGTERMed (--term), or with --roll the PID (npm run cluster)
  gets SIGHUP and restarts every gateway in turn (the victims then start spread over
  all URLs). Reports when every victim was back (rejoined with since), rejoins/s, the
  control group's delivery p99 meanwhile, and lost/duplicated messages.

  --clients N           victims (default 15000; this machine allows 20,000 fds per process)
  --rooms R             victims' rooms (default 300)
  --members M           members of those rooms in all (default: --clients): the M - clients
                        others (bystanders) join from the other URLs, and the report counts
                        the presence and occupancy frames they get. One big room:
                        --rooms 1 --clients 5000 --members 10000
  --survivor-pid PID    a gateway that stays up: their CPU before, during and after (repeatable)
  --settle S            after every victim is back, keep counting for S seconds (default 0;
                        a SIGKILLed gateway's users are withdrawn after PRESENCE_TTL_MS)
  --rate N              messages/s into the victims' rooms (default 100)
  --control-rooms R     control rooms (default 10), --control-members M (default 20),
  --control-rate N      messages/s per control room (default 10)
  --redis-pid PID       report this process's CPU during the storm
  --workers W           victim processes (default: one per core, at least 2)
  --timeout S           give up after S seconds (default 120)
  --json FILE           also write the report as JSON`;

export async function stormMain(argv: string[], fail: (message: string) => never): Promise<void> {
  if (argv.includes('--help')) {
    process.stdout.write(`${STORM_USAGE}\n`);
    process.exit(0);
  }
  const { values } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      url: { type: 'string', multiple: true }, kill: { type: 'string' }, term: { type: 'string' }, roll: { type: 'string' },
      clients: { type: 'string' }, rooms: { type: 'string' }, rate: { type: 'string' }, 'control-rooms': { type: 'string' },
      'control-members': { type: 'string' }, 'control-rate': { type: 'string' }, 'redis-pid': { type: 'string' },
      workers: { type: 'string' }, timeout: { type: 'string' }, json: { type: 'string' },
      members: { type: 'string' }, 'survivor-pid': { type: 'string', multiple: true }, settle: { type: 'string' },
    },
  });
  const urls = (values.url ?? []).flatMap((u) => u.split(',')).filter(Boolean);
  if (urls.length < 2) fail('storm needs at least two --url: the victims\' gateway first');
  const num = (name: keyof typeof values, fallback: number): number => {
    const n = values[name] === undefined ? fallback : Number(values[name]);
    if (!Number.isFinite(n) || n < 0) fail(`--${name} must be a number`);
    return n;
  };
  const [mode, pid] = values.kill ? ['SIGKILL', values.kill] : values.term ? ['SIGTERM', values.term] : values.roll ? ['SIGHUP', values.roll] : fail('give --kill, --term or --roll');
  const rotations = urls.map((_, i) => [...urls.slice(i), ...urls.slice(0, i)]);
  const redisPid = values['redis-pid'] === undefined ? undefined : Number(values['redis-pid']);
  const options: StormOptions = {
    victimUrls: mode === 'SIGHUP' ? rotations : [urls],
    controlUrls: mode === 'SIGHUP' ? urls : urls.slice(1),
    clients: num('clients', 15_000), rooms: num('rooms', 300), rate: num('rate', 100),
    ...(values.members !== undefined && { members: num('members', 0) }),
    survivorPids: (values['survivor-pid'] ?? []).map(Number).filter((n) => n > 0), settleMs: num('settle', 0) * 1000,
    controlRooms: num('control-rooms', 10), controlMembers: num('control-members', 20), controlRate: num('control-rate', 10),
    workers: num('workers', Math.max(2, availableParallelism())), batch: 500, timeoutMs: num('timeout', 120) * 1000,
    disrupt: async () => { process.kill(Number(pid), mode as NodeJS.Signals); },
    ...(redisPid !== undefined && { cpuSeconds: () => cpuSeconds(redisPid) }),
    progress: (line) => process.stderr.write(`${line}\n`),
  };
  const report = await runStorm(options);
  process.stdout.write(`${describeStorm(report)}\n`);
  if (values.json) (await import('node:fs')).writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
  process.exit(report.lost === 0 && report.duplicated === 0 && report.stillAway === 0 ? 0 : 1);
}
