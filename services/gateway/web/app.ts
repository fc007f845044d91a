import { ChatClient, type ConnectionState } from '@chat/client';
import type { DirectMessageFrame, MessageFrame } from '@chat/protocol';

/** The chat page: one ChatClient, a little state per room, plain DOM. */

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

interface RoomView {
  messages: MessageFrame[];
  members: Set<string>;
  typing: Map<string, ReturnType<typeof setTimeout>>;
  unread: number;
}

const rooms = new Map<string, RoomView>();
const directs = new Map<string, DirectMessageFrame[]>();
let me = '';
let current = ''; // a room, or "@user" for a direct conversation
let client: ChatClient;

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  me = $<HTMLInputElement>('name').value.trim();
  localStorage.setItem('chat.name', me);
  $('login').hidden = true;
  $('app').hidden = false;
  start($<HTMLInputElement>('first-room').value.trim());
});
$<HTMLInputElement>('name').value = localStorage.getItem('chat.name') ?? '';

function start(firstRoom: string): void {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  client = new ChatClient({ url: `${scheme}://${location.host}/ws`, user: me });
  client.on('state', (state, detail) => showState(state, detail.node));
  client.on('message', (m) => {
    const view = room(m.room);
    view.messages.push(m);
    clearTyping(view, m.user);
    if (current === m.room) renderMessages();
    else { view.unread++; renderRooms(); }
  });
  client.on('joined', (frame, info) => {
    const view = room(frame.room);
    view.members = new Set(frame.members);
    if (info.gap) notice(frame.room, 'some earlier messages could not be recovered');
    if (frame.room === current) renderMembers();
  });
  // The application's backend took this user out of a room (server API).
  client.on('left', (frame) => {
    rooms.delete(frame.room);
    const next = rooms.keys().next().value;
    if (current === frame.room && next !== undefined) select(next);
    else renderRooms();
  });
  client.on('presence', (p) => {
    const view = room(p.room);
    if (p.state === 'online') view.members.add(p.user);
    else { view.members.delete(p.user); clearTyping(view, p.user); }
    if (p.room === current) renderMembers();
  });
  client.on('typing', (t) => {
    const view = room(t.room);
    clearTimeout(view.typing.get(t.user));
    view.typing.set(t.user, setTimeout(() => clearTyping(view, t.user), 3000));
    if (t.room === current) renderTyping();
  });
  client.on('dm', (m) => {
    const other = m.from === me ? m.to : m.from;
    directs.set(other, [...(directs.get(other) ?? []), m]);
    renderDirects();
    if (current === `@${other}`) renderMessages();
  });
  client.connect().catch(() => {});
  void enter(firstRoom);
}

async function enter(name: string): Promise<void> {
  room(name);
  select(name);
  try {
    await client.join(name);
  } catch {
    // not connected yet: the client joins every known room once it is
    if (!client.rooms.includes(name)) setTimeout(() => void enter(name), 1000);
  }
}

function room(name: string): RoomView {
  let view = rooms.get(name);
  if (view === undefined) {
    rooms.set(name, (view = { messages: [], members: new Set(), typing: new Map(), unread: 0 }));
    renderRooms();
  }
  return view;
}

function select(target: string): void {
  current = target;
  const view = rooms.get(target);
  if (view) view.unread = 0;
  $('title').textContent = target.startsWith('@') ? target : `#${target}`;
  $('app').classList.remove('show-side');
  renderRooms();
  renderDirects();
  renderMembers();
  renderMessages();
  renderTyping();
}

$('join').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>('room');
  void enter(input.value.trim());
  input.value = '';
});

$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>('text');
  const text = input.value;
  if (!text.trim()) return;
  input.value = '';
  const sending = current.startsWith('@') ? client.dm(current.slice(1), text) : client.send(current, text);
  sending.catch((err: Error) => notice(current, `Not sent: ${err.message}`));
});

let lastTyping = 0;
$('text').addEventListener('input', () => {
  if (current.startsWith('@') || Date.now() - lastTyping < 1500) return;
  lastTyping = Date.now();
  client.typing(current);
});

$('menu').addEventListener('click', () => $('app').classList.toggle('show-side'));

// ---- rendering ----------------------------------------------------------------

function showState(state: ConnectionState, node?: string): void {
  const badge = $('state');
  badge.dataset.state = state;
  badge.textContent = state === 'connected' ? `connected${node ? ` · ${node}` : ''}` : state;
}

function renderRooms(): void {
  const list = $('rooms');
  list.replaceChildren(...[...rooms].map(([name, view]) => item(`#${name}`, () => select(name), name === current, view.unread)));
}

function renderDirects(): void {
  $('dms').replaceChildren(...[...directs.keys()].map((user) => item(`@${user}`, () => select(`@${user}`), current === `@${user}`)));
}

function renderMembers(): void {
  const view = rooms.get(current);
  const members = view ? [...view.members].sort() : [];
  $('members').replaceChildren(...members.map((user) => {
    const li = item(user === me ? `${user} (you)` : user, () => {
      if (user === me) return;
      if (!directs.has(user)) directs.set(user, []);
      select(`@${user}`);
    });
    li.classList.add('dot');
    li.title = user === me ? '' : `Message ${user} directly`;
    return li;
  }));
}

function renderMessages(): void {
  const list = $('messages');
  const entries = current.startsWith('@')
    ? (directs.get(current.slice(1)) ?? []).map((m) => ({ user: m.from, text: m.text, ts: m.ts }))
    : (rooms.get(current)?.messages ?? []);
  list.replaceChildren(...entries.map((m) => {
    const li = document.createElement('li');
    if (m.user === '') li.className = 'notice';
    else if (m.user === me) li.className = 'mine';
    const who = span('who', m.user);
    const when = span('when', new Date(m.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
    li.append(...(m.user === '' ? [] : [who]), document.createTextNode(m.text), document.createTextNode(' '), when);
    return li;
  }));
  list.scrollTop = list.scrollHeight;
}

function renderTyping(): void {
  const names = [...(rooms.get(current)?.typing.keys() ?? [])];
  $('typing').textContent = names.length === 0 ? '' : `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} typing…`;
}

function clearTyping(view: RoomView, user: string): void {
  clearTimeout(view.typing.get(user));
  if (view.typing.delete(user) && view === rooms.get(current)) renderTyping();
}

function notice(target: string, text: string): void {
  const view = rooms.get(target);
  if (view === undefined) return;
  view.messages.push({ type: 'message', room: target, id: '', user: '', text, ts: Date.now() });
  if (target === current) renderMessages();
}

function item(text: string, onClick: () => void, active = false, badge = 0): HTMLLIElement {
  const li = document.createElement('li');
  li.textContent = text;
  if (active) li.classList.add('active');
  if (badge > 0) li.append(span('badge', String(badge)));
  li.addEventListener('click', onClick);
  return li;
}

function span(className: string, text: string): HTMLSpanElement {
  const s = document.createElement('span');
  s.className = className;
  s.textContent = text;
  return s;
}
