import type { ChangeEventFrame, MessageFrame } from '@chat/protocol';
import { describe, expect, it, vi } from 'vitest';
import { applyChange } from '../src/index.js';
import { fakeClient } from './fake-socket.js';

/* Edits, deletes and reactions: the requests, the events, and what they do to the messages an application holds. */

const msg = (id: string, user = 'bob', text = `t${id}`): MessageFrame => ({ type: 'message', room: 'r', id, user, text, ts: 1000 });
const edit = (id: string, target: string, text: string): ChangeEventFrame => ({ type: 'edit', room: 'r', id, target, user: 'bob', text, ts: 2000 });
const remove = (id: string, target: string): ChangeEventFrame => ({ type: 'delete', room: 'r', id, target, user: 'mod', ts: 3000 });
const reaction = (id: string, target: string, user: string, op: 'add' | 'remove', count: number): ChangeEventFrame =>
  ({ type: 'reaction', room: 'r', id, target, user, reaction: 'heart', op, count, ts: 4000 });

async function joined() {
  const fake = fakeClient({});
  const changes: ChangeEventFrame[] = [];
  fake.client.on('change', (c) => changes.push(c));
  const connecting = fake.client.connect();
  await vi.waitFor(() => expect(fake.sockets).toHaveLength(1));
  fake.socket().open('alice');
  await connecting;
  const joining = fake.client.join('r');
  const join = fake.socket().last('join');
  fake.socket().push({ type: 'joined', room: 'r', ref: join.ref, count: 1, members: ['alice'], history: [msg('1-0')], newest: '1-0' });
  await joining;
  return { ...fake, changes };
}

describe('applyChange', () => {
  it('edits, tombstones, and counts reactions with the reader\'s own, each idempotently and only on its target', () => {
    let m = msg('1-0');
    m = applyChange(applyChange(m, edit('2-0', '1-0', 'fixed'), 'alice'), edit('2-0', '1-0', 'fixed'), 'alice');
    expect(m).toMatchObject({ text: 'fixed', edited: 2000 });
    m = applyChange(m, reaction('3-0', '1-0', 'alice', 'add', 1), 'alice');
    m = applyChange(m, reaction('4-0', '1-0', 'carol', 'add', 2), 'alice');
    expect(m).toMatchObject({ reactions: { heart: 2 }, mine: ['heart'] });
    m = applyChange(m, reaction('5-0', '1-0', 'alice', 'remove', 1), 'alice');
    expect([m.reactions, m.mine]).toEqual([{ heart: 1 }, undefined]);
    expect(applyChange(m, edit('6-0', '9-9', 'other'), 'alice')).toBe(m);
    const gone = applyChange(m, remove('7-0', '1-0'), 'alice');
    expect(gone).toEqual({ type: 'message', room: 'r', id: '1-0', user: 'bob', text: '', ts: 1000, deleted: true });
    expect(applyChange(gone, edit('8-0', '1-0', 'back'), 'alice')).toBe(gone);
  });
});

describe('ChatClient: changes of messages', () => {
  it('sends edit, delete, react and unreact, and resolves with their acks', async () => {
    const fake = await joined();
    const calls = [
      fake.client.edit('r', '1-0', 'new'), fake.client.delete('r', '1-0'), fake.client.react('r', '1-0', 'heart'), fake.client.unreact('r', '1-0', 'heart'),
    ];
    const sent = fake.socket().sent.slice(-4);
    expect(sent.map((f) => f.type)).toEqual(['edit', 'delete', 'react', 'unreact']);
    expect(sent[0]).toMatchObject({ room: 'r', target: '1-0', text: 'new' });
    expect(sent[2]).toMatchObject({ reaction: 'heart' });
    sent.forEach((f, i) => fake.socket().push({ type: 'ack', ref: f.ref!, id: `${i + 2}-0`, ts: 1, ...(i === 3 && { unchanged: true }) }));
    const acks = await Promise.all(calls);
    expect(acks.map((a) => a.unchanged)).toEqual([undefined, undefined, undefined, true]);
  });

  it('rejects a refused change with its code', async () => {
    const fake = await joined();
    const editing = fake.client.edit('r', '1-0', 'not mine');
    fake.socket().push({ type: 'error', ref: fake.socket().last('edit').ref!, code: 'forbidden', message: 'only the author' });
    await expect(editing).rejects.toMatchObject({ code: 'forbidden' });
  });

  it('passes every change on, also a replayed one at or below the rejoin\'s position, and moves the position past the newest', async () => {
    const fake = await joined();
    fake.socket().push(edit('2-0', '1-0', 'fixed'), reaction('3-0', '1-0', 'carol', 'add', 1));
    expect(fake.changes.map((c) => c.id)).toEqual(['2-0', '3-0']);
    // Reconnect: the rejoin asks from the newest id seen, a change's.
    fake.socket().close(1006);
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(2), { timeout: 5000 });
    fake.socket().open('alice');
    await vi.waitFor(() => expect(fake.socket().sent.some((f) => f.type === 'join')).toBe(true));
    const rejoin = fake.socket().last('join');
    expect(rejoin).toMatchObject({ room: 'r', since: '3-0' });
    fake.socket().push({ type: 'joined', room: 'r', ref: rejoin.ref, count: 1, members: ['alice'], history: [], recovered: true, newest: '5-0' });
    fake.socket().push(remove('4-0', '1-0'));
    expect(fake.changes.map((c) => c.id)).toEqual(['2-0', '3-0', '4-0']);
  });
});
