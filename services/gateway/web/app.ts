import { ChatClient, applyChange, type ConnectionState, type DirectMessageFrame, type MessageFrame, type StateDetail, type TransportName } from '@chat/client';
import { ConversationList } from './conversations.js';
import { span } from './dom.js';
import { messageItem, type MessageActions } from './message-view.js';

/**
 * The chat page: one ChatClient, a little state per room, plain DOM. Open
 * rooms are joined by name; conversations (members-only rooms, direct ones
 * opened by clicking a user's name) are listed with unread badges that every
 * tab of the user shares.
 */

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/**
 * The member list of a room above the gateway's list limit, read page by page
 * as it is scrolled (the client keeps only a sample and the count there).
 */
interface Pager {
  users: string[];
  /** Where the next page starts; undefined with `done`. */
  next: string | undefined;
  done: boolean;
  loading: boolean;
}

interface RoomView {
  messages: MessageFrame[];
  typing: Map<string, ReturnType<typeof setTimeout>>;
  unread: number;
  /** Set while the room is above the list limit and its list has been looked at. */
  pager: Pager | undefined;
}

/** Names per `members` page, and how close (px) to the bottom of the list the next one is read. */
const PAGE = 100;
const NEAR_BOTTOM_PX = 300;

const rooms = new Map<string, RoomView>();
const directs = new Map<string, DirectMessageFrame[]>();
let me = '';
let current = ''; // a room, or "@user" for an ephemeral direct message (`dm`, not kept)
let client: ChatClient;
let conversations: ConversationList;
/** The message the composer edits, when it does. */
let editing: MessageFrame | undefined;
/** Narrow enough that the list covers the room when shown (style.css). */
const phone = matchMedia('(max-width: 700px)');

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
  // A WebSocket first; where one cannot get through (or stalls), the event stream and POSTs (/sse).
  // With development identities, `?mod=<patterns>` on the page makes this user a moderator of those rooms.
  const mod = new URLSearchParams(location.search).get('mod');
  client = new ChatClient({ url: `${scheme}://${location.host}/ws${mod === null ? '' : `?mod=${encodeURIComponent(mod)}`}`, user: me });
  conversations = new ConversationList({
    client,
    me,
    onScreen,
    newestShown,
    pick: (name) => void enter(name),
    current: () => current,
  });
  client.on('state', (state, detail) => showState(state, detail));
  client.on('message', (m) => {
    const view = room(m.room);
    view.messages.push(m);
    clearTyping(view, m.user);
    if (current === m.room) { renderMessages(); conversations.markRead(m.room); }
    else if (!conversations.has(m.room)) { view.unread++; renderRooms(); } // a conversation's badge is the gateway's count
  });
  client.on('joined', (frame, info) => {
    room(frame.room);
    if (info.gap) notice(frame.room, 'some earlier messages could not be recovered');
  });
  // The list was replaced as a whole: a (re)join, or the room crossed the list limit either way.
  client.on('members', (list) => {
    const view = room(list.room);
    view.pager = undefined;
    if (list.room === current) { renderMembers(); renderOnline(); }
  });
  // The application's backend took this user out of a room (server API).
  client.on('left', (frame) => {
    rooms.delete(frame.room);
    const next = rooms.keys().next().value;
    if (current === frame.room && next !== undefined) select(next);
    else { renderRooms(); conversations.render(); }
  });
  client.on('presence', (p) => {
    const view = room(p.room);
    if (p.state === 'offline') clearTyping(view, p.user);
    if (p.room === current) { renderMembers(); renderOnline(); }
  });
  client.on('occupancy', (o) => {
    if (o.room === current) { renderOnline(); renderPagerStatus(); }
  });
  client.on('typing', (t) => {
    const view = room(t.room);
    clearTimeout(view.typing.get(t.user));
    view.typing.set(t.user, setTimeout(() => clearTyping(view, t.user), 3000));
    if (t.room === current) renderTyping();
  });
  // An edit, a delete or a reaction: the room's messages as they are now.
  client.on('change', (c) => {
    const view = rooms.get(c.room);
    if (view === undefined) return;
    view.messages = view.messages.map((m) => applyChange(m, c, me));
    if (c.room === current) renderMessages();
    conversations.render();
  });
  client.on('dm', (m) => {
    const other = m.from === me ? m.to : m.from;
    directs.set(other, [...(directs.get(other) ?? []), m]);
    renderDirects();
    if (current === `@${other}`) renderMessages();
  });
  client.connect().then(() => conversations.load()).catch(() => {});
  void enter(firstRoom);
}

async function enter(name: string): Promise<void> {
  room(name);
  select(name);
  try {
    await client.join(name);
    conversations.markRead(name); // its history is on screen now
  } catch {
    // not connected yet: the client joins every known room once it is
    if (!client.rooms.includes(name)) setTimeout(() => void enter(name), 1000);
  }
}

function room(name: string): RoomView {
  let view = rooms.get(name);
  if (view === undefined) {
    rooms.set(name, (view = { messages: [], typing: new Map(), unread: 0, pager: undefined }));
    renderRooms();
  }
  return view;
}

function select(target: string): void {
  current = target;
  const view = rooms.get(target);
  if (view) view.unread = 0;
  $('title').textContent = target.startsWith('@') ? target : conversations.title(target);
  showSide(false);
  renderRooms();
  renderDirects();
  conversations.render();
  renderOnline();
  renderMembers();
  renderMessages();
  renderTyping();
  conversations.markRead(target);
}

/**
 * The stored conversation with `user` (`open`: the same room whoever opens it,
 * kept for them while they are offline), entered like a room.
 */
async function openConversation(user: string): Promise<void> {
  if (user === me) return;
  try {
    const name = await client.open(user);
    conversations.opened(name, user);
    await enter(name);
  } catch (err) {
    notice(current, `Could not open a conversation with ${user}: ${(err as Error).message}`);
  }
}

/** The newest message of the room the page shows (notices have no id). */
function newestShown(name: string): string | undefined {
  const messages = rooms.get(name)?.messages ?? [];
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.id !== '') return messages[i]!.id;
  return undefined;
}

/** Whether the room is what the user sees now: selected, in a visible tab, and (on a phone) not under the list. */
function onScreen(name: string): boolean {
  return name === current && document.visibilityState === 'visible' && !(phone.matches && $('app').classList.contains('show-side'));
}

/** On a phone the list and the room are two views; the menu button goes between them. */
function showSide(show: boolean): void {
  $('app').classList.toggle('show-side', show);
  $('menu').setAttribute('aria-expanded', String(show));
  if (!show) conversations.markRead(current);
}

document.addEventListener('visibilitychange', () => conversations?.markRead(current));

$('open').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>('open-user');
  void openConversation(input.value.trim());
  input.value = '';
});

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
  if (editing !== undefined) {
    const { room: target, id } = editing;
    stopEditing();
    client.edit(target, id, text).catch((err: Error) => notice(target, `Not edited: ${err.message}`));
    return;
  }
  const sending = current.startsWith('@') ? client.dm(current.slice(1), text) : client.send(current, text);
  sending.catch((err: Error) => notice(current, `Not sent: ${err.message}`));
});

$('text').addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && editing !== undefined) { stopEditing(); $<HTMLInputElement>('text').value = ''; }
});

/** What each message row can do, for this user. */
const actions: MessageActions = {
  get me() { return me; },
  moderates: (name) => (client.welcome?.mod ?? []).some((p) => (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : p === name)),
  edit: (m) => {
    editing = m;
    const input = $<HTMLInputElement>('text');
    input.value = m.text;
    input.focus();
    $('composer').classList.add('editing');
    $('composer-button').textContent = 'Save';
  },
  remove: (m) => void client.delete(m.room, m.id).catch((err: Error) => notice(m.room, `Not deleted: ${err.message}`)),
  toggle: (m, reaction) => {
    const change = m.mine?.includes(reaction) === true ? client.unreact(m.room, m.id, reaction) : client.react(m.room, m.id, reaction);
    change.catch((err: Error) => notice(m.room, `Reaction not sent: ${err.message}`));
  },
  openConversation: (user) => void openConversation(user),
};

function stopEditing(): void {
  editing = undefined;
  $('composer').classList.remove('editing');
  $('composer-button').textContent = 'Send';
}

let lastTyping = 0;
$('text').addEventListener('input', () => {
  if (current.startsWith('@') || Date.now() - lastTyping < 1500) return;
  lastTyping = Date.now();
  client.typing(current);
});

$('menu').addEventListener('click', () => showSide(!$('app').classList.contains('show-side')));

$('members').addEventListener('scroll', () => {
  if (nearBottom($('members'))) void loadMembers(current);
}, { passive: true });

/** Reads the next page of a big room's members (the first when none was read), and shows it if the room is on screen. */
async function loadMembers(name: string): Promise<void> {
  const view = rooms.get(name);
  const pager = view?.pager;
  if (view === undefined || pager === undefined || pager.loading || pager.done) return;
  pager.loading = true;
  if (name === current) renderPagerStatus();
  try {
    const page = await client.members(name, { limit: PAGE, ...(pager.next !== undefined && { after: pager.next }) });
    if (view.pager !== pager) return; // the list was replaced meanwhile
    pager.users.push(...page.users);
    pager.next = page.next;
    pager.done = page.next === undefined;
    if (name === current) appendMembers(page.users);
  } catch {
    // not connected, or refused: the next scroll (or the rejoin's list) tries again
  } finally {
    pager.loading = false;
  }
  if (name !== current || view.pager !== pager) return;
  renderPagerStatus();
  if (nearBottom($('members'))) void loadMembers(name); // a list still shorter than its box reads on
}

function nearBottom(list: HTMLElement): boolean {
  return list.scrollTop + list.clientHeight >= list.scrollHeight - NEAR_BOTTOM_PX;
}

// ---- rendering ----------------------------------------------------------------

const TRANSPORT_NAMES: Record<TransportName, string> = { websocket: 'WebSocket', sse: 'SSE' };

/** "connected · gw-1 · SSE": the state, and once connected the gateway and the transport. */
function showState(state: ConnectionState, { node, transport }: StateDetail): void {
  const badge = $('state');
  badge.dataset.state = state;
  badge.textContent = state;
  badge.title = '';
  delete badge.dataset.transport;
  if (state !== 'connected') return;
  if (node) badge.append(span('node', ` · ${node}`)); // hidden on a phone, where the bar is short
  if (transport === undefined) return;
  badge.dataset.transport = transport;
  badge.append(span('transport', ` · ${TRANSPORT_NAMES[transport]}`));
  if (transport === 'sse') badge.title = 'WebSockets do not get through here: messages come as server-sent events and go out as HTTP POSTs';
}

/** Open rooms; conversations have their own list. */
function renderRooms(): void {
  const list = $('rooms');
  const open = [...rooms].filter(([name]) => !conversations.has(name));
  list.replaceChildren(...open.map(([name, view]) => item(`#${name}`, () => select(name), name === current, view.unread)));
}

/** Ephemeral direct messages (`dm`), shown only when some came: conversations are what a click on a name opens. */
function renderDirects(): void {
  $('dm-section').hidden = directs.size === 0;
  $('dms').replaceChildren(...[...directs.keys()].map((user) => item(`@${user}`, () => select(`@${user}`), current === `@${user}`)));
}

function renderOnline(): void {
  const count = current.startsWith('@') ? undefined : client.count(current);
  $('online').textContent = count === undefined ? '' : `${count.toLocaleString()} online`;
}

/**
 * Within the list limit: everyone, kept current by presence. Above it: the
 * pages read so far, the next one read as the list is scrolled near its end.
 */
function renderMembers(): void {
  const list = $('members');
  const view = rooms.get(current);
  const members = current.startsWith('@') ? undefined : client.memberList(current);
  if (view === undefined || members === undefined) {
    list.replaceChildren();
    return;
  }
  if (members.complete) {
    list.replaceChildren(...members.users.map(memberItem));
    return;
  }
  if (view.pager === undefined) {
    view.pager = { users: [], next: undefined, done: false, loading: false };
    void loadMembers(current);
  }
  list.replaceChildren(...view.pager.users.map(memberItem), pagerStatus());
  renderPagerStatus();
}

/** Adds names below those shown (keeps the scroll position), before the status line. */
function appendMembers(users: string[]): void {
  const list = $('members');
  const status = list.querySelector('li.more');
  for (const user of users) list.insertBefore(memberItem(user), status);
}

function memberItem(user: string): HTMLLIElement {
  const li = item(user === me ? `${user} (you)` : user, () => void openConversation(user));
  li.classList.add('dot');
  li.title = user === me ? '' : `Open your conversation with ${user}`;
  return li;
}

function pagerStatus(): HTMLLIElement {
  const li = document.createElement('li');
  li.className = 'more';
  return li;
}

/** "Loading…", or how many of the room's users are listed. */
function renderPagerStatus(): void {
  const status = $('members').querySelector<HTMLLIElement>('li.more');
  const pager = rooms.get(current)?.pager;
  if (status === null || pager === undefined) return;
  const count = client.count(current) ?? pager.users.length;
  status.textContent = pager.loading ? 'Loading…'
    : pager.done ? `${pager.users.length.toLocaleString()} listed`
    : `${pager.users.length.toLocaleString()} of ${count.toLocaleString()} · scroll for more`;
}

function renderMessages(): void {
  const list = $('messages');
  if (!current.startsWith('@')) {
    list.replaceChildren(...(rooms.get(current)?.messages ?? []).map((m) => (m.user === '' ? noticeItem(m.text) : messageItem(m, actions))));
    list.scrollTop = list.scrollHeight;
    return;
  }
  const entries = (directs.get(current.slice(1)) ?? []).map((m) => ({ user: m.from, text: m.text, ts: m.ts }));
  list.replaceChildren(...entries.map((m) => {
    const li = document.createElement('li');
    if (m.user === me) li.className = 'mine';
    const when = span('when', new Date(m.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
    li.append(span('who', m.user), document.createTextNode(m.text), document.createTextNode(' '), when);
    return li;
  }));
  list.scrollTop = list.scrollHeight;
}

function noticeItem(text: string): HTMLLIElement {
  const li = document.createElement('li');
  li.className = 'notice';
  li.textContent = text;
  return li;
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

