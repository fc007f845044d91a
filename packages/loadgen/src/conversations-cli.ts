import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { describeConversations, directPairs, runConversations, type ConversationsOptions } from './conversations.js';

export const CONVERSATIONS_USAGE = `Usage: npm run load -- conversations --url URL[,URL...] [options]

  Users with several devices (connections) in many direct conversations (opened with
  open) and a few members-only groups (made through the server API), sending and
  reading. In --joined of the memberships one device of the user joins the room and
  may send; the other devices only get unread. At the end every connection's latest
  unread per room, and its whole rooms list, must equal what the generator computes
  (messages by others after the user's last read); mismatches are printed (0 expected).
  Reports send->ack, delivery and unread p50/p99, rooms p99, and with --redis-url Redis
  CPU per message. Exits 1 on any mismatch, failed send or error.

  --url URL             gateway WebSocket URLs; repeat or comma-separate (device d of user i
                        connects to URL (i + d) mod URLs: a user's devices on different gateways)
  --users N             users (default 200)
  --devices N           connections per user (default 2)
  --dms N               direct conversations per user (default 4; odd needs an even --users)
  --groups N            members-only groups (default 4; needs --api-key), --group-size N (default 20)
  --joined F            fraction of memberships with a device joined (default 0.5; each room
                        has at least one: its first member)
  --group-share F       share of the messages that go to groups (default 0.3)
  --rate N              messages/s, all rooms together (default 50)
  --read-rate N         reads/s, all users together (default: half of --rate): a random device
                        reads a random room with unread messages up to the newest it was shown
  --list-rate N         rooms requests/s, timed (default 10)
  --size B              message text size (default 100)
  --duration S          seconds of traffic (default 10, at most 600)
  --idle S              seconds held idle and measured before the traffic (default 0)
  --open-rooms          the baseline: the same rooms open, every device of every member joined;
                        only deliveries are checked (no counts)
  --api-key KEY         the gateways' API_KEY (groups are made with PUT /api/rooms/{room}/membership)
  --api-url URL         the server API's base (default: the first --url's host, http)
  --redis-url URL       read this Redis's INFO around the traffic: CPU per message (repeatable)
  --server-pid PID      a gateway process on this machine: CPU per message (repeatable)
  --settle-timeout S    wait at most S s for every connection's first unread of each room (default 30)
  --workers W           load-generator processes (default: one per core, at least 2)
  --json FILE           also write the report as JSON (- for stdout)
  --quiet               no progress lines`;

export async function conversationsMain(argv: string[], fail: (message: string) => never): Promise<void> {
  if (argv.includes('--help')) {
    process.stdout.write(`${CONVERSATIONS_USAGE}\n`);
    process.exit(0);
  }
  const { values } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      url: { type: 'string', multiple: true }, users: { type: 'string' }, devices: { type: 'string' }, dms: { type: 'string' },
      groups: { type: 'string' }, 'group-size': { type: 'string' }, joined: { type: 'string' }, 'group-share': { type: 'string' },
      rate: { type: 'string' }, 'read-rate': { type: 'string' }, 'list-rate': { type: 'string' }, size: { type: 'string' },
      duration: { type: 'string' }, idle: { type: 'string' }, 'open-rooms': { type: 'boolean' }, 'api-key': { type: 'string' },
      'api-url': { type: 'string' }, 'redis-url': { type: 'string', multiple: true }, 'server-pid': { type: 'string', multiple: true },
      'settle-timeout': { type: 'string' }, workers: { type: 'string' }, json: { type: 'string' }, quiet: { type: 'boolean' },
    },
  });
  const num = (name: keyof typeof values, fallback: number, min: number, max: number): number => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) fail(`--${name} must be a number from ${min} to ${max}, got "${String(raw)}"`);
    return n;
  };
  const urls = (values.url ?? ['ws://127.0.0.1:8080/ws']).flatMap((u) => u.split(',')).filter(Boolean);
  const users = num('users', 200, 2, 200_000);
  const directs = num('dms', 4, 0, 10_000);
  const groups = num('groups', 4, 0, 100_000);
  const openRooms = values['open-rooms'] ?? false;
  try {
    directPairs(users, directs);
  } catch (err) {
    fail(`--dms: ${(err as Error).message}`);
  }
  if (directs === 0 && groups === 0) fail('give --dms or --groups: there are no rooms');
  if (groups > 0 && !openRooms && values['api-key'] === undefined) fail('groups are made through the server API: give --api-key (the gateways\' API_KEY), or --groups 0');
  const rate = num('rate', 50, 0, 1_000_000);
  const options: ConversationsOptions = {
    urls, users, devices: num('devices', 2, 1, 100), directs, groups, groupSize: num('group-size', 20, 2, 1_000_000),
    joined: num('joined', 0.5, 0, 1), groupShare: num('group-share', 0.3, 0, 1), rate, readRate: num('read-rate', rate / 2, 0, 1_000_000),
    listRate: num('list-rate', 10, 0, 100_000), size: num('size', 100, 24, 1_000_000), duration: num('duration', 10, 1, 600),
    idle: num('idle', 0, 0, 600), openRooms, apiKey: values['api-key'], apiUrl: values['api-url'],
    workers: num('workers', Math.max(2, availableParallelism()), 1, 64),
    redisUrls: (values['redis-url'] ?? []).flatMap((u) => u.split(',')).filter(Boolean),
    serverPids: (values['server-pid'] ?? []).map(Number).filter((n) => n > 0),
    settleTimeoutMs: num('settle-timeout', 30, 1, 600) * 1000,
    progress: values.quiet ? () => {} : (line) => process.stderr.write(`${line}\n`),
  };
  const report = await runConversations(options);
  process.stdout.write(`${describeConversations(report)}\n`);
  if (values.json === '-') process.stdout.write(`${JSON.stringify(report)}\n`);
  else if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
  process.exit(report.ok ? 0 : 1);
}
