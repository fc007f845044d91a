import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { postgresForTests } from '@chat/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveStore, type ArchivedMessage } from '../src/index.js';

const T = Date.parse('2026-11-30T12:00:00Z');
const message = (seq: number, user: string, text: string): ArchivedMessage => ({ id: `${T}-${seq}`, body: `","user":"${user}","text":${JSON.stringify(text)},"ts":${T + seq}}` });
const edit = (seq: number, target: number, user: string, text: string): ArchivedMessage => ({
  id: `${T}-${seq}`, body: `","target":"${T}-${target}","user":"${user}","text":${JSON.stringify(text)},"ts":${T + seq}}`, change: { kind: 'edit', target: `${T}-${target}` },
});
const remove = (seq: number, target: number, author: string): ArchivedMessage => ({
  id: `${T}-${seq}`, body: `","target":"${T}-${target}","user":"mod","ts":${T + seq}}`, change: { kind: 'delete', target: `${T}-${target}`, author, sentAt: T + target },
});
const react = (seq: number, target: number, user: string, reaction: string, op: 'add' | 'remove'): ArchivedMessage => ({
  id: `${T}-${seq}`, body: `","target":"${T}-${target}","user":"${user}","reaction":"${reaction}","op":"${op}","count":0,"ts":${T + seq}}`,
  change: { kind: 'reaction', target: `${T}-${target}` },
});
const batch = (room: string, messages: ArchivedMessage[]) => [{ room, messages, through: messages.at(-1)!.id, fromStart: true }];
const parsed = (page: ArchivedMessage[]) => page.map((m) => JSON.parse(`{"id":"${m.id}${m.body}`) as Record<string, unknown>);

describe('ArchiveStore: changes of messages', () => {
  let postgres: Awaited<ReturnType<typeof postgresForTests>>;
  const opened: ArchiveStore[] = [];
  beforeAll(async () => {
    postgres = await postgresForTests();
  });
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await postgres?.close();
  });
  const fresh = async (): Promise<[ArchiveStore, string]> => {
    const url = await postgres.createDatabase('changes');
    const store = await ArchiveStore.open({ url });
    opened.push(store);
    return [store, url];
  };

  it('applies edits, deletes and reactions in stream order, idempotently, and pages show the current version', async () => {
    const [store] = await fresh();
    const entries = [
      message(0, 'alice', 'helo'), message(1, 'bob', 'hi'), edit(2, 0, 'alice', 'hello'),
      react(3, 0, 'bob', 'heart', 'add'), react(4, 0, 'carol', 'heart', 'add'), react(5, 0, 'carol', 'heart', 'remove'), react(6, 1, 'alice', 'eyes', 'add'),
      remove(7, 1, 'bob'),
    ];
    for (let i = 0; i < 2; i++) await store.write(batch('r', entries)); // the second time changes nothing
    expect(parsed(await store.before('r', undefined, 10, 'bob'))).toEqual([
      { id: `${T}-0`, user: 'alice', text: 'hello', ts: T, edited: T + 2, reactions: { heart: 1 }, mine: ['heart'] },
      { id: `${T}-1`, user: 'bob', text: '', ts: T + 1, deleted: true },
    ]);
    expect(parsed((await store.after('r', '0-0', 10)).messages).map((m) => m.id)).toEqual([`${T}-0`, `${T}-1`]);
  });

  it('makes a tombstone of a message it never saw, and a late write of that message keeps it', async () => {
    const [store] = await fresh();
    await store.write(batch('r', [message(0, 'bob', 'kept'), remove(5, 3, 'alice')]));
    await store.write(batch('r', [message(3, 'alice', 'too late')])); // an archiver batch read before the delete
    expect(parsed(await store.before('r', undefined, 10)).map((m) => [m.user, m.text, m.deleted])).toEqual([['bob', 'kept', undefined], ['alice', '', true]]);
  });

  it('erases a user: every row a tombstone, a racing write brings no text back, and pg_dump finds none', async () => {
    const [store, url] = await fresh();
    await store.write(batch('a', [message(0, 'eve', 'secret-alpha'), message(1, 'bob', 'public'), react(2, 0, 'bob', 'eyes', 'add')]));
    await store.write(batch('b', [message(0, 'eve', 'secret-beta')]));
    await store.tombstone('b', [{ id: `${T}-9`, author: 'eve', sentAt: T + 9 }]);
    expect(await store.eraseUser('eve')).toBe(2);
    await store.write(batch('b', [message(9, 'eve', 'secret-gamma')])); // the lagging archiver writes what Redis erased
    expect(await store.eraseUser('eve')).toBe(0);
    expect(parsed(await store.before('a', undefined, 10, 'bob')).map((m) => [m.user, m.text, m.reactions])).toEqual([['eve', '', undefined], ['bob', 'public', undefined]]);
    const { stdout } = await promisify(execFile)('pg_dump', ['--data-only', url], { maxBuffer: 64 * 1024 * 1024 });
    expect(stdout).toContain('public');
    expect(stdout).not.toContain('secret');
  });
});
