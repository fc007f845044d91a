#!/usr/bin/env node
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { runLoad, type LoadOptions, type LoadReport, type Scenario } from './coordinator.js';
import { CONVERSATIONS_USAGE, conversationsMain } from './conversations-cli.js';
import { describeRooms, runRooms, transportRows, type RoomsOptions } from './rooms.js';
import { STORM_USAGE, stormMain } from './storm-cli.js';
import type { TransportName } from './transport.js';

const USAGE = `Usage: npm run load -- <connect|fanout|churn|big-room|many-rooms> [options]   (storm: npm run load -- storm --help;
       conversations: npm run load -- conversations --help)

  big-room              one room of --members (default 1000); the fill stops at each
                        --checkpoints size C with C - 1 members, where --probe-joins
                        joins (each joiner sees C members) are timed and leave again;
                        then the room is held idle for --idle s, then messages are sent
                        at each --rate (default 20) for --duration s. Reports the fill
                        time, CPU per join (server: --server-pid, Redis: --redis-url),
                        join p99 per checkpoint, idle CPU, memory per member, delivery
                        p99 and CPU per delivery. --senders default 1.
  many-rooms            --rooms (default 3000) rooms of --members (default 2), over
                        --clients connections (default rooms x members; fewer: each
                        joins several rooms); held idle for --idle s, then each --rate
                        (default 600,3000; 0: idle only). Reports idle Redis CPU and
                        scripts/s, memory per connection and per room, delivery p99 and
                        CPU per delivery. One sender per room.

  --url URL             gateway or load-balancer WebSocket URL; repeat or comma-separate
                        (default ws://127.0.0.1:8080/ws; Socket.IO: http://host:port)
  --transport T         ws (this protocol over WebSocket, default; chat is the same), sse (the
                        fallback transport: GET /sse streams, frames sent with POST /sse/send
                        to the stream's gateway, one POST in flight per client carrying what
                        queued meanwhile; the URLs stay ws://host:port/ws), mixed (half the
                        clients on each: every room has both, half the senders each; steps
                        report latencies per transport) or socketio (the bench baseline)
  --sse-relay           sse/mixed: POST to the gateway after the stream's in --url, so every
                        POST is relayed to the stream's gateway (as most are behind a load
                        balancer without stickiness); needs two or more --url
  --clients N           connect: connections to open (default 1000); many-rooms: see above
  --rooms R             fanout/churn: rooms (default 10); many-rooms: see above
  --members M           fanout/churn: members per room (default 100); clients = R x M;
                        big-room: the room's size
  --senders S           clients that also send (default: one per room)
  --rate N              messages per second, all senders together (default 100);
                        big-room, many-rooms: a comma-separated list, one step each
  --size B              message text size in bytes (default 100)
  --duration S          seconds of sending, or of holding for connect (default 10, at most 600)
  --ramp N              connections opened per second (default 2000; big-room and
                        many-rooms 0: as fast as possible, 200 at a time per worker)
  --workers W           load-generator processes (default: one per core, at least 2;
                        more when the clients need them: 18,000 connections per process)
  --checkpoints LIST    big-room: room sizes to probe joins at (default 100,1000,10000,20000
                        up to --members; none: no probes)
  --probe-joins N       big-room: probe joins per checkpoint (default 200)
  --probe-rate N        big-room: probe joins started per second (default 100)
  --idle S              big-room, many-rooms: seconds held idle and measured (default 10)
  --redis-url URL       read this Redis's INFO (CPU, scripts, memory) around each phase or step:
                        Redis CPU per delivery (repeatable)
  --gc-inspector PORT   a server's inspector port (node --inspect=127.0.0.1:PORT); memory is also
                        read after a full GC in each: connect, fanout, churn: with --server-pid,
                        before and after connecting, per connection (repeatable)
  --churn F             churn: fraction of receivers reconnecting each second (default 0.05)
  --find-max            raise the rate step by step until p99 > --max-p99 or anything is lost
  --max-p99 MS          latency bound for --find-max (default 50)
  --step-seconds S      seconds per --find-max step (default 5)
  --step-factor X       rate multiplier between steps (default 1.5)
  --max-steps N         at most this many steps (default 12)
  --metrics URL         a server's /metrics, to report its memory per connection (repeatable)
  --server-pid PID      a server process on this machine: each step reports its CPU, and
                        big-room/many-rooms its memory per connection (repeatable)
  --local-addresses A   source addresses for the connections, e.g. 127.0.0.1-127.0.0.20
  --resend              members use the client library (@chat/client): every send carries an
                        idempotency key and is resent after a reconnect; loss and duplicates
                        are counted per message
  --roll PID            while sending, send SIGHUP to PID every --roll-every seconds: npm run
                        cluster then restarts its gateways one by one (a rolling restart)
  --roll-every S        seconds between rolls (default 10)
  --json FILE           also write the report as JSON (- for stdout)
  --quiet               no progress line

Exits 1 when any message was lost, duplicated or reordered (or --find-max found no good step).`;

function fail(message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}\n`);
  process.exit(2);
}

type Parsed = (LoadOptions | RoomsOptions) & { json?: string; quiet: boolean };

function parseOptions(argv: string[]): Parsed {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string', multiple: true }, transport: { type: 'string' }, clients: { type: 'string' },
      rooms: { type: 'string' }, members: { type: 'string' }, senders: { type: 'string' }, rate: { type: 'string' },
      size: { type: 'string' }, duration: { type: 'string' }, ramp: { type: 'string' }, workers: { type: 'string' },
      churn: { type: 'string' }, 'find-max': { type: 'boolean' }, 'max-p99': { type: 'string' },
      'step-seconds': { type: 'string' }, 'step-factor': { type: 'string' }, 'max-steps': { type: 'string' },
      metrics: { type: 'string', multiple: true }, 'server-pid': { type: 'string', multiple: true }, 'gc-inspector': { type: 'string', multiple: true }, 'local-addresses': { type: 'string' }, 'sse-relay': { type: 'boolean' }, json: { type: 'string' },
      resend: { type: 'boolean' }, roll: { type: 'string' }, 'roll-every': { type: 'string' },
      checkpoints: { type: 'string' }, 'probe-joins': { type: 'string' }, 'probe-rate': { type: 'string' }, idle: { type: 'string' },
      'redis-url': { type: 'string', multiple: true },
      quiet: { type: 'boolean' }, help: { type: 'boolean' },
    },
  });
  if (values.help) { process.stdout.write(`${USAGE}\n`); process.exit(0); }
  const scenario = positionals[0] as Scenario | RoomsOptions['scenario'] | undefined;
  const roomsScenario = scenario === 'big-room' || scenario === 'many-rooms';
  if (scenario !== 'connect' && scenario !== 'fanout' && scenario !== 'churn' && !roomsScenario) fail('give a scenario: connect, fanout, churn, big-room or many-rooms');
  const num = (name: keyof typeof values, fallback: number, min: number, max: number): number => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) fail(`--${name} must be a number from ${min} to ${max}, got "${String(raw)}"`);
    return n;
  };
  const given = values.transport ?? 'ws';
  const transport = (given === 'chat' ? 'ws' : given) as TransportName;
  if (!['ws', 'sse', 'mixed', 'socketio'].includes(transport)) fail('--transport must be ws, sse, mixed or socketio');
  if (values.resend && transport !== 'ws') fail('--resend needs --transport ws (the client library has no event-stream transport)');
  const urls = (values.url ?? ['ws://127.0.0.1:8080/ws']).flatMap((u) => u.split(',')).filter(Boolean);
  const list = (name: 'rate' | 'checkpoints', fallback: number[]): number[] => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    if (raw === 'none') return [];
    const numbers = raw.split(',').map(Number);
    if (numbers.some((n) => !Number.isFinite(n) || n < 0)) fail(`--${name} must be a comma-separated list of numbers, got "${raw}"`);
    return numbers;
  };
  const workers = num('workers', Math.max(2, availableParallelism()), 1, 64);
  const serverPids = (values['server-pid'] ?? []).map(Number).filter((n) => n > 0);
  if (roomsScenario) {
    if (values['find-max'] || values.resend || values.roll !== undefined) fail(`${scenario} takes no --find-max, --resend or --roll`);
    const big = scenario === 'big-room';
    const roomCount = big ? 1 : num('rooms', 3000, 1, 1_000_000);
    const members = num('members', big ? 1000 : 2, 1, 200_000);
    const clients = big ? members : num('clients', roomCount * members, members, 200_000);
    if (roomCount * members > 10_000_000) fail('at most 10,000,000 memberships');
    if (clients > roomCount * members) fail('--clients: at most rooms x members');
    return {
      scenario, transport, urls, rooms: roomCount, members, clients,
      senders: big ? num('senders', 1, 0, clients) : num('senders', roomCount, 0, roomCount),
      rates: list('rate', big ? [20] : [600, 3000]), size: num('size', 100, 24, 1_000_000), duration: num('duration', 10, 1, 600),
      ramp: num('ramp', 0, 0, 1_000_000), workers, localAddresses: expandAddresses(values['local-addresses']),
      checkpoints: big ? list('checkpoints', [100, 1000, 10_000, 20_000].filter((c) => c <= members)) : [],
      probeJoins: num('probe-joins', 200, 1, 100_000), probeRate: num('probe-rate', 100, 1, 100_000), idleSeconds: num('idle', 10, 0, 600),
      serverPids, redisUrls: (values['redis-url'] ?? []).flatMap((u) => u.split(',')).filter(Boolean),
      gcInspectorPorts: (values['gc-inspector'] ?? []).map(Number).filter((n) => n > 0), maxP99Ms: num('max-p99', 50, 0.1, 60_000),
      quiet: values.quiet ?? false, json: values.json, progress: () => {},
    };
  }
  const rooms = num('rooms', 10, 1, 100_000);
  const members = num('members', 100, 1, 200_000);
  const clients = scenario === 'connect' ? num('clients', 1000, 1, 200_000) : rooms * members;
  if (clients > 200_000) fail('at most 200000 clients');
  const rates = list('rate', [100]);
  if (rates.length !== 1) fail(`${scenario} takes one --rate`);
  return {
    scenario, transport, urls, clients, rooms: scenario === 'connect' ? 1 : rooms,
    senders: Math.min(clients, num('senders', scenario === 'connect' ? 0 : rooms, 0, clients)),
    rate: rates[0]!, size: num('size', 100, 24, 1_000_000), duration: num('duration', 10, 1, 600),
    ramp: num('ramp', 2000, 0, 1_000_000), workers: Math.min(workers, clients), churn: num('churn', 0.05, 0, 1),
    findMax: values['find-max'] ?? false, maxP99Ms: num('max-p99', 50, 0.1, 60_000), stepSeconds: num('step-seconds', 5, 1, 120),
    stepFactor: num('step-factor', 1.5, 1.01, 10), maxSteps: num('max-steps', 12, 1, 50),
    metricsUrls: values.metrics ?? [], serverPids, localAddresses: expandAddresses(values['local-addresses']),
    redisUrls: (values['redis-url'] ?? []).flatMap((u) => u.split(',')).filter(Boolean),
    gcInspectorPorts: (values['gc-inspector'] ?? []).map(Number).filter((n) => n > 0),
    resend: values.resend ?? false,
    sseRelay: values['sse-relay'] ?? false,
    ...(values.roll !== undefined && { roll: { pid: num('roll', 0, 1, 4_194_304), everySeconds: num('roll-every', 10, 1, 600) } }),
    quiet: values.quiet ?? false, json: values.json,
    progress: () => {},
  };
}

/** "127.0.0.1-127.0.0.20" -> every address of the range. */
function expandAddresses(spec: string | undefined): string[] {
  if (!spec) return [];
  const [from, to = from] = spec.split('-');
  const a = from!.split('.').map(Number);
  const last = Number(to!.split('.').at(-1));
  if (a.length !== 4 || a.some((n) => !(n >= 0 && n <= 255)) || !(last >= a[3]! && last <= 255)) fail(`bad --local-addresses "${spec}"`);
  return Array.from({ length: last - a[3]! + 1 }, (_, i) => `${a[0]}.${a[1]}.${a[2]}.${a[3]! + i}`);
}

function table(report: LoadReport, options: LoadOptions): string {
  const rows: Array<[string, string]> = [
    ['scenario', `${report.scenario} (${report.transport}) against ${report.urls.length} URL(s)`],
    ['clients', `${report.connected} connected of ${report.clients}${options.scenario !== 'connect' ? ` in ${options.rooms} rooms, ${options.senders} senders` : ''}`
      + `${report.connectedByTransport ? ` (${Object.entries(report.connectedByTransport).map(([t, n]) => `${n} ${t}`).join(', ')})` : ''}`],
    ['connect time', `p50 ${report.connectMs.p50} ms, p99 ${report.connectMs.p99} ms, max ${report.connectMs.max} ms`],
  ];
  if (report.serverMemory) rows.push(['server memory', `${(report.serverMemory.afterBytes / 1e6).toFixed(0)} MB, ${report.serverMemory.bytesPerConnection} bytes per connection`]);
  if (report.serverLiveMemory) rows.push(['after a full GC', `${(report.serverLiveMemory.afterBytes / 1e6).toFixed(0)} MB RSS, ${report.serverLiveMemory.bytesPerConnection} bytes per connection`]);
  for (const [i, s] of report.steps.entries()) {
    const label = report.steps.length > 1 ? `step ${i + 1}` : 'result';
    if (options.scenario === 'connect') continue;
    rows.push([label, `${s.rate} msg/s offered: sent ${s.sent}, acked ${s.acked}, failed ${s.failed}, delivered ${s.delivered} (${s.deliveriesPerSec}/s)`]);
    rows.push(['  latency', `p50 ${s.latencyMs.p50} ms, p90 ${s.latencyMs.p90} ms, p99 ${s.latencyMs.p99} ms, max ${s.latencyMs.max} ms`]);
    rows.push(['  send->ack', `p50 ${s.ackLatencyMs.p50} ms, p90 ${s.ackLatencyMs.p90} ms, p99 ${s.ackLatencyMs.p99} ms, max ${s.ackLatencyMs.max} ms`]);
    rows.push(...transportRows(s));
    rows.push(['  integrity', `lost ${s.lost}, duplicated ${s.duplicates}, reordered ${s.reordered}, errors ${s.errors}${s.reconnects ? `, reconnects ${s.reconnects}` : ''}${options.resend ? ' (resend mode)' : ''}`]);
    rows.push(['  loadgen cpu', `${s.loadgenCpuPercent}% (${options.workers} workers, ${availableParallelism()} cores)`]);
    const both = s.transports ? ' (both transports together)' : '';
    if (s.serverCpuPercent !== undefined) rows.push(['  server cpu', `${s.serverCpuPercent}% = ${s.serverCpuUsPerDelivery} µs per delivery${both}`]);
    if (s.redis) rows.push(['  redis cpu', `${s.redis.cpuPercent}% = ${s.redis.cpuUsPerDelivery} µs per delivery${both}`]);
  }
  if (report.best) rows.push(['highest sustainable', `${report.best.deliveriesPerSec} deliveries/s (p99 ${report.best.latencyMs.p99} ms <= ${options.maxP99Ms} ms, nothing lost)`]);
  rows.push(['verdict', report.ok ? 'OK' : 'FAILED']);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

async function main(): Promise<void> {
  if (process.argv[2] === 'storm') return stormMain(process.argv.slice(3), (message) => {
    process.stderr.write(`${message}\n\n${STORM_USAGE}\n`);
    process.exit(2);
  });
  if (process.argv[2] === 'conversations') return conversationsMain(process.argv.slice(3), (message) => {
    process.stderr.write(`${message}\n\n${CONVERSATIONS_USAGE}\n`);
    process.exit(2);
  });
  const options = parseOptions(process.argv.slice(2));
  options.progress = options.quiet ? () => {} : (line) => process.stderr.write(`${line}\n`);
  const report = 'rates' in options ? await runRooms(options) : await runLoad(options);
  process.stdout.write(`${'rates' in options ? describeRooms(report as Awaited<ReturnType<typeof runRooms>>) : table(report as LoadReport, options as LoadOptions)}\n`);
  if (options.json === '-') process.stdout.write(`${JSON.stringify(report)}\n`);
  else if (options.json) writeFileSync(options.json, `${JSON.stringify(report, null, 2)}\n`);
  process.exit(report.ok ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`load: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
