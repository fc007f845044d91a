// Load on a running system: the load generator as a child process, a send->ack probe, CPU marks.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { cpuSeconds } from '../../packages/proc/dist/index.js';
import { children, killTree, log, root, sleep } from './processes.mjs';

export const PROBE_RATE = 200; // send->ack probe: messages/s, over PROBE_SOCKETS sockets in rooms of their own
export const PROBE_SOCKETS = 6;

export const cpuMark = (pids) => ({ at: Date.now(), cpu: pids.map(cpuSeconds) });
/** Each process's CPU since the mark, in % of one core. */
export const cpuSince = (pids, mark) => pids.map((pid, i) => Math.round(((cpuSeconds(pid) - mark.cpu[i]) / Math.max(0.001, (Date.now() - mark.at) / 1000)) * 100));

/**
 * Runs the load generator (a child process, stopped by PID if it overruns).
 * onSending: called once sending has begun; onStep(n): when --find-max step n has ended.
 */
export async function load(tmp, gateways, args, label, { onSending, onStep } = {}) {
  const out = join(tmp, `${label}.json`);
  const argv = ['packages/loadgen/dist/cli.js', ...args, '--url', gateways.urls.join(','),
    ...gateways.pids.flatMap((pid) => ['--server-pid', String(pid)]), '--json', out];
  log(`  $ node packages/loadgen/dist/cli.js ${args.join(' ')} --url <3 gateways> --server-pid <3 gateways>`);
  const child = spawn(process.execPath, argv, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  child.loadgen = true;
  children.add(child);
  let started = false;
  createInterface({ input: child.stderr }).on('line', (line) => {
    const sent = /\| sent (\d+)\/s/.exec(line);
    if (!started && sent && Number(sent[1]) > 0) { started = true; onSending?.(child.pid); }
    const step = /^step (\d+):/.exec(line);
    if (step) onStep?.(Number(step[1]));
    if (/^(load:|step \d+:)/.test(line)) log(`    ${line}`);
  });
  const killer = setTimeout(() => { log(`    load generator overran: stopping it (${label})`); killTree(child.pid); }, 180_000);
  await new Promise((r) => child.once('exit', r));
  clearTimeout(killer);
  children.delete(child);
  if (!existsSync(out)) throw new Error(`load generator wrote no report (${label})`);
  return JSON.parse(readFileSync(out, 'utf8'));
}

const quantile = (sorted, q) => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
const r2 = (n) => (n === null ? null : Math.round(n * 100) / 100);

/**
 * Send->ack latency: PROBE_SOCKETS sockets, spread over the gateways, each alone in
 * a room of its own, sending PROBE_RATE messages/s together for `seconds`, each
 * timed from its send to its ack (which, with REDIS_WAIT_REPLICAS, comes after WAIT).
 */
export async function ackProbe(urls, seconds) {
  const { default: WebSocket } = await import('ws');
  const run = Math.random().toString(36).slice(2, 8);
  const opened = [];
  const sockets = await Promise.all(Array.from({ length: PROBE_SOCKETS }, (_, i) => new Promise((resolve, reject) => {
    const room = `ackprobe-${run}-${i}`;
    const ws = new WebSocket(`${urls[i % urls.length]}?user=probe-${run}-${i}`, { perMessageDeflate: false });
    opened.push(ws);
    const pending = new Map();
    const state = { ws, room, pending, latencies: [], failed: 0, unanswered: 0 };
    setTimeout(() => reject(new Error('probe socket not joined within 10 s')), 10_000).unref();
    ws.on('error', reject);
    ws.on('message', (data) => {
      const raw = data.toString();
      if (raw.startsWith('{"type":"message"')) return;
      const frame = JSON.parse(raw);
      if (frame.type === 'welcome') ws.send(JSON.stringify({ type: 'join', room, ref: 'join' }));
      else if (frame.type === 'joined') resolve(state);
      else if (frame.ref !== undefined && pending.has(frame.ref)) {
        if (frame.type === 'ack') state.latencies.push(performance.now() - pending.get(frame.ref));
        else state.failed++;
        pending.delete(frame.ref);
      }
    });
  }))).catch((err) => {
    for (const ws of opened) ws.terminate();
    throw err;
  });
  const text = 'p'.repeat(100);
  const gapMs = (1000 * PROBE_SOCKETS) / PROBE_RATE;
  const until = performance.now() + seconds * 1000;
  let n = 0;
  for (let t = performance.now(); t < until; t += gapMs) {
    for (const s of sockets) {
      const ref = `s${++n}`;
      s.pending.set(ref, performance.now());
      s.ws.send(JSON.stringify({ type: 'send', room: s.room, text, ref }));
    }
    await sleep(Math.max(0, t + gapMs - performance.now()));
  }
  const deadline = performance.now() + 3000;
  while (sockets.some((s) => s.pending.size > 0) && performance.now() < deadline) await sleep(20);
  for (const s of sockets) s.ws.terminate();
  const all = sockets.flatMap((s) => s.latencies).sort((a, b) => a - b);
  return {
    sent: n, acked: all.length, failed: sockets.reduce((a, s) => a + s.failed, 0), unanswered: sockets.reduce((a, s) => a + s.pending.size, 0),
    p50: r2(quantile(all, 0.5)), p99: r2(quantile(all, 0.99)), max: r2(all.at(-1) ?? null),
  };
}
