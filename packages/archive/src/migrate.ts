import type { Pool } from 'pg';
import { MIGRATIONS } from './migrations.js';

/** Any number that names this schema's lock among other applications' advisory locks. */
const MIGRATION_LOCK = 727_001;

/**
 * Applies the migrations not applied yet, each in its own transaction, in
 * order, under an advisory lock so that several processes starting at once
 * apply each exactly once. Resolves with the schema version.
 */
export async function migrate(pool: Pool): Promise<number> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (err: Error): void => {
    broken = err; // the connection broke while checked out: fail this call, not the process
  };
  client.on('error', onError);
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(`CREATE TABLE IF NOT EXISTS chat_schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM chat_schema_migrations');
    const applied = new Set(rows.map((r) => r.version));
    for (const migration of MIGRATIONS) {
      if (applied.has(migration.version)) continue;
      await client.query('BEGIN');
      try {
        await client.query(migration.sql);
        await client.query('INSERT INTO chat_schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${migration.version} (${migration.name}) failed: ${(err as Error).message}`, { cause: err });
      }
    }
    return Math.max(0, ...MIGRATIONS.map((m) => m.version));
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {});
    client.off('error', onError);
    client.release(broken);
  }
}
