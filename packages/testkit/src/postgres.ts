import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { sleep } from './wait.js';

/** A PostgreSQL server a test owns: it may be stopped, crashed and started again, keeping its data. */
export interface PostgresServer {
  /** The `postgres` database, as the superuser `postgres` (trust authentication). */
  readonly url: string;
  readonly port: number;
  /** A new, empty database of its own; resolves with its URL. */
  createDatabase(label?: string): Promise<string>;
  /** Fast shutdown (SIGINT to the postmaster): connections are cut, data kept. */
  stop(): Promise<void>;
  /** Immediate shutdown (SIGQUIT), as a crash: it recovers from its WAL on the next start. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it and removes its data directory. */
  cleanup(): Promise<void>;
  /** The postmaster's PID while it runs (undefined in a container). */
  pid(): number | undefined;
}

const BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
const INSTALL_HINT = 'Tests need PostgreSQL: set DATABASE_URL, or install the Debian server (apt-get install postgresql: '
  + `its binaries in ${BIN}), or run a Docker engine so testcontainers can start one.`;

/**
 * The PostgreSQL a test uses, in this order: DATABASE_URL (each test still gets
 * a database of its own); the Debian binaries, started on a free port in a
 * temporary directory; a testcontainers container; else a clear error.
 */
export async function postgresForTests(): Promise<{ url: string; createDatabase(label?: string): Promise<string>; close(): Promise<void> }> {
  const fromEnv = process.env.DATABASE_URL?.trim();
  if (fromEnv) return { url: fromEnv, createDatabase: (label) => createDatabase(fromEnv, label), close: async () => {} };
  const server = existsSync(join(BIN, 'postgres')) ? await startPostgres() : await startContainer();
  return { url: server.url, createDatabase: (label) => server.createDatabase(label), close: () => server.cleanup() };
}

/** Creates a database named after `label` and a random suffix on the server of `adminUrl`; resolves with its URL. */
export async function createDatabase(adminUrl: string, label = 'test'): Promise<string> {
  const { default: pg } = await import('pg');
  const name = `${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${Math.random().toString(36).slice(2, 10)}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * initdb and postgres from the Debian binaries, in a temporary directory, on a
 * free port of 127.0.0.1. They refuse to run as root, so then they run as the
 * `postgres` user. Durability settings are off (tests do not crash the machine).
 */
export async function startPostgres(): Promise<PostgresServer> {
  if (!existsSync(join(BIN, 'initdb'))) throw new Error(INSTALL_HINT);
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'pg-test-'));
  const data = join(dir, 'data');
  if (asRoot) {
    const [uid, gid] = ['-u', '-g'].map((flag) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim()));
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error(`running as root, and there is no postgres user to run PostgreSQL as (${INSTALL_HINT})`);
    chownSync(dir, uid!, gid!);
  }
  const run = (command: string, args: string[]) => (asRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args]) as [string, string[]];
  const init = spawnSync(...run(join(BIN, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']), { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort();
  const launch = async (): Promise<void> => {
    const [command, args] = run(join(BIN, 'postgres'), ['-D', data, '-p', String(port), '-h', '127.0.0.1', '-k', dir,
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200']);
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let output = '';
    child.stderr.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
    const deadline = Date.now() + 20_000;
    while (!(await accepts(port))) {
      if (child.exitCode !== null) throw new Error(`postgres exited during start-up:\n${output}`);
      if (Date.now() > deadline) throw new Error(`postgres on port ${port} did not accept connections within 20 s:\n${output}`);
      await sleep(50);
    }
  };
  const postmaster = (): number | undefined => {
    const pidFile = join(data, 'postmaster.pid');
    return existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').split('\n')[0]) : undefined;
  };
  /** The postmaster we started, by the PID it wrote; waits until it is gone. */
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const pid = postmaster();
    if (pid === undefined) return;
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    for (let i = 0; i < 400 && alive(pid); i++) await sleep(25);
  };
  await launch();
  return serverOn(port, {
    stop: () => halt('SIGINT'),
    kill: () => halt('SIGQUIT'),
    start: launch,
    cleanup: async () => {
      await halt('SIGINT');
      rmSync(dir, { recursive: true, force: true });
    },
    pid: postmaster,
  });
}

type Controls = Omit<PostgresServer, 'url' | 'port' | 'createDatabase'>;

function serverOn(port: number, controls: Controls): PostgresServer {
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return { url, port, createDatabase: (label) => createDatabase(url, label), ...controls };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function accepts(port: number): Promise<boolean> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

async function startContainer(): Promise<PostgresServer> {
  let module: typeof import('testcontainers');
  try {
    module = await import('testcontainers');
  } catch (err) {
    throw new Error(INSTALL_HINT, { cause: err });
  }
  const port = await freePort();
  type Started = Awaited<ReturnType<InstanceType<typeof module.GenericContainer>['start']>>;
  let container: Started | null = null;
  const launch = async (): Promise<void> => {
    try {
      container = await new module.GenericContainer('postgres:15').withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
        .withExposedPorts({ container: 5432, host: port }).withWaitStrategy(module.Wait.forListeningPorts()).start();
    } catch (err) {
      throw new Error(INSTALL_HINT, { cause: err });
    }
  };
  await launch();
  return serverOn(port, {
    stop: async () => { await container?.stop(); container = null; },
    kill: async () => { await container?.stop({ timeout: 0 }); container = null; },
    start: launch,
    cleanup: async () => { await container?.stop(); container = null; },
    pid: () => undefined,
  });
}
