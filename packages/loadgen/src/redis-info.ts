import { connect } from 'node:net';

/** What a benchmark reads from a Redis server's INFO, summed over the servers given. */
export interface RedisSample {
  /** used_cpu_user + used_cpu_sys, seconds. */
  cpuSeconds: number;
  /** Script calls so far: EVALSHA, EVAL, their _RO forms and FCALL (INFO commandstats). */
  scriptCalls: number;
  /** total_commands_processed (each sample's own INFO included). */
  commands: number;
  /** used_memory, bytes. */
  usedMemory: number;
}

const SCRIPT_COMMANDS = new Set(['evalsha', 'eval', 'evalsha_ro', 'eval_ro', 'fcall', 'fcall_ro']);

/** INFO cpu/memory/stats/commandstats of each of `urls` (redis://[:password@]host:port), summed. */
export async function sampleRedis(urls: readonly string[]): Promise<RedisSample> {
  const samples = await Promise.all(urls.map(async (url) => parseInfo(await info(url))));
  return samples.reduce((a, b) => ({
    cpuSeconds: a.cpuSeconds + b.cpuSeconds, scriptCalls: a.scriptCalls + b.scriptCalls,
    commands: a.commands + b.commands, usedMemory: a.usedMemory + b.usedMemory,
  }), { cpuSeconds: 0, scriptCalls: 0, commands: 0, usedMemory: 0 });
}

export function parseInfo(text: string): RedisSample {
  const field = (name: string): number => Number(new RegExp(`^${name}:([^\\r\\n]*)`, 'm').exec(text)?.[1] ?? 0);
  let scriptCalls = 0;
  for (const match of text.matchAll(/^cmdstat_([a-z_|]+):calls=(\d+)/gm)) {
    if (SCRIPT_COMMANDS.has(match[1]!)) scriptCalls += Number(match[2]);
  }
  return {
    cpuSeconds: field('used_cpu_user') + field('used_cpu_sys'),
    scriptCalls,
    commands: field('total_commands_processed'),
    usedMemory: field('used_memory'),
  };
}

/** One INFO over a connection of its own (RESP by hand: the load generator has no Redis client). */
function info(url: string): Promise<string> {
  const { hostname, port, password, username } = new URL(url);
  const command = (...args: string[]) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
  const auth = password ? command('AUTH', ...(username ? [decodeURIComponent(username)] : []), decodeURIComponent(password)) : '';
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port || 6379), hostname || '127.0.0.1');
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`INFO from ${hostname}:${port}: no answer in 5 s`)); }, 5000);
    socket.on('error', (err) => { clearTimeout(timer); reject(err); });
    socket.on('connect', () => socket.write(auth + command('INFO', 'cpu', 'memory', 'stats', 'commandstats')));
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk]);
      let text = data.toString('latin1');
      if (auth) {
        if (text.startsWith('-')) { clearTimeout(timer); socket.destroy(); reject(new Error(`AUTH: ${text.split('\r\n')[0]}`)); return; }
        const end = text.indexOf('\r\n');
        if (end < 0) return;
        text = text.slice(end + 2);
      }
      if (text.startsWith('-')) { clearTimeout(timer); socket.destroy(); reject(new Error(`INFO: ${text.split('\r\n')[0]}`)); return; }
      const header = text.indexOf('\r\n');
      if (!text.startsWith('$') || header < 0) return;
      const length = Number(text.slice(1, header));
      const body = Buffer.from(text.slice(header + 2), 'latin1');
      if (body.length < length) return;
      clearTimeout(timer);
      socket.end();
      resolve(body.subarray(0, length).toString('utf8'));
    });
  });
}
