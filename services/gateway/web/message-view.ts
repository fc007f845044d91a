import type { MessageFrame } from '@chat/client';
import { span } from './dom.js';

/** The reactions the page offers: the protocol's keys, and how they look. */
export const REACTIONS: ReadonlyArray<[key: string, face: string]> = [['thumbsup', '👍'], ['heart', '❤️'], ['laugh', '😂']];

/** What a message's row can do. */
export interface MessageActions {
  me: string;
  /** Whether the user moderates the room (the token's `mod` claim): they delete others' messages too. */
  moderates(room: string): boolean;
  edit(message: MessageFrame): void;
  remove(message: MessageFrame): void;
  toggle(message: MessageFrame, reaction: string): void;
  /** Clicking a sender's name. */
  openConversation(user: string): void;
}

/** A room message's row: who, text (or "message deleted"), "(edited)", time, its reactions, and what the user may do to it. */
export function messageItem(m: MessageFrame, actions: MessageActions): HTMLLIElement {
  const li = document.createElement('li');
  li.dataset.id = m.id;
  if (m.user === actions.me) li.classList.add('mine');
  if (m.deleted === true) li.classList.add('deleted');
  const who = span('who', m.user);
  if (m.user !== actions.me) {
    who.classList.add('link');
    who.title = `Open your conversation with ${m.user}`;
    who.addEventListener('click', () => actions.openConversation(m.user));
  }
  const text = m.deleted === true ? span('text gone', 'message deleted') : span('text', m.text);
  const when = span('when', new Date(m.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
  li.append(who, text, document.createTextNode(' '));
  if (m.edited !== undefined) li.append(span('edited', '(edited) '));
  li.append(when);
  if (m.deleted !== true) li.append(reactionBar(m, actions), tools(m, actions));
  return li;
}

function reactionBar(m: MessageFrame, actions: MessageActions): HTMLElement {
  const bar = span('reactions', '');
  for (const [key, face] of REACTIONS) {
    const count = m.reactions?.[key] ?? 0;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'reaction';
    button.dataset.reaction = key;
    button.title = key;
    button.textContent = count > 0 ? `${face} ${count}` : face;
    if (m.mine?.includes(key) === true) button.classList.add('mine');
    if (count === 0) button.classList.add('none');
    button.addEventListener('click', () => actions.toggle(m, key));
    bar.append(button);
  }
  return bar;
}

function tools(m: MessageFrame, actions: MessageActions): HTMLElement {
  const box = span('tools', '');
  const own = m.user === actions.me;
  if (own) box.append(tool('✎', 'edit', 'Edit', () => actions.edit(m)));
  if (own || actions.moderates(m.room)) box.append(tool('🗑', 'delete', own ? 'Delete' : 'Delete (moderator)', () => actions.remove(m)));
  return box;
}

function tool(face: string, name: string, title: string, onClick: () => void): HTMLButtonElement {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = `tool ${name}`;
  button.title = title;
  button.setAttribute('aria-label', title);
  button.textContent = face;
  button.addEventListener('click', onClick);
  return button;
}
