import type { ChatClient, RoomUnread } from '@chat/client';
import { span } from './dom.js';

/**
 * The conversation list: the user's members-only rooms (direct conversations
 * among them) with their unread badges, and the reads that clear them.
 *
 * Counts are the client's (`listRooms` pages and `unread` frames, read again
 * by the client after a reconnect), so every tab of the user shows the same
 * badge: a read in one tab reaches the others as `unread`.
 */
export interface ConversationListOptions {
  client: ChatClient;
  me: string;
  /** Whether the room is on screen now (selected, the tab visible, not covered by the list on a phone). */
  onScreen(room: string): boolean;
  /** The newest message of the room the page shows, if any. */
  newestShown(room: string): string | undefined;
  /** The user picked a conversation in the list. */
  pick(room: string): void;
  /** The room selected, whether or not it is on screen. */
  current(): string;
}

/** How long unread frames of rooms without a known partner are gathered before the list is read for their names. */
const RELIST_MS = 250;
const FIRST_PAGE = 50;

export class ConversationList {
  /** room -> the other user, from `opened` and the list's `with` */
  readonly #partners = new Map<string, string>();
  /** Opened here before any count came: when, for their place in the list. */
  readonly #openedAt = new Map<string, number>();
  /** room -> the id of the read sent for it, until its answer (so a burst of renders sends one). */
  readonly #reading = new Map<string, string>();
  /** Rooms the list was read for already; not again for them (a members-only room that is no conversation has no partner). */
  readonly #asked = new Set<string>();
  #relist: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly o: ConversationListOptions) {
    const { client } = o;
    client.on('rooms', (page) => {
      for (const entry of page.rooms) if (entry.with !== undefined) this.#partners.set(entry.room, entry.with);
      this.render();
    });
    client.on('unread', (frame) => {
      if (!this.#partners.has(frame.room) && !this.#asked.has(frame.room)) this.#relistSoon(frame.room);
      this.render();
    });
    client.on('unreadTotal', () => this.render());
  }

  /** The first page, once connected (after a reconnect the client reads it again by itself). */
  async load(): Promise<void> {
    await this.o.client.listRooms({ limit: FIRST_PAGE });
  }

  /** Whether `room` is one of the user's members-only rooms (listed, told of, or opened here). */
  has(room: string): boolean {
    return this.#partners.has(room) || this.o.client.unreadOf(room) !== undefined;
  }

  /** "@bob" for a direct conversation, else "#room". */
  title(room: string): string {
    const other = this.#partners.get(room);
    return other !== undefined ? `@${other}` : `#${room}`;
  }

  /** Opened here: listed at once, before the gateway's first count for it. */
  opened(room: string, other: string): void {
    this.#partners.set(room, other);
    if (this.o.client.unreadOf(room) === undefined) this.#openedAt.set(room, Date.now());
    this.render();
  }

  /**
   * Reads the room up to its newest message shown, if it is on screen and that
   * is not read yet: the badge clears here and, through the gateway, in the
   * user's other tabs and devices.
   */
  markRead(room: string): void {
    if (!this.has(room) || !this.o.onScreen(room)) return;
    const newest = this.o.newestShown(room);
    if (newest === undefined) return;
    const known = this.o.client.unreadOf(room);
    if (known !== undefined && known.count === 0 && known.read === newest) return;
    if (this.#reading.get(room) === newest) return;
    this.#reading.set(room, newest);
    this.o.client.read(room, newest).then(
      () => this.#reading.get(room) === newest && this.#reading.delete(room),
      () => this.#reading.delete(room),
    );
  }

  render(): void {
    const { client } = this.o;
    const known = client.conversations();
    const listed = new Set(known.map((r) => r.room));
    const openedOnly: RoomUnread[] = [...this.#openedAt.keys()].filter((room) => !listed.has(room)).map((room) => ({ room, count: 0, read: '' }));
    const rows = [...known, ...openedOnly].sort((a, b) => this.#when(b) - this.#when(a));
    $('conversations').replaceChildren(...(rows.length > 0 ? rows.map((r) => this.#item(r)) : [empty()]));
    const total = client.unreadTotal;
    for (const badge of [$('total'), $('menu-badge')]) {
      badge.textContent = String(total);
      badge.hidden = total === 0;
    }
    document.title = total > 0 ? `(${total}) Chat` : 'Chat';
  }

  /** Newest message first; a conversation opened here and still empty by when it was opened. */
  #when(r: RoomUnread): number {
    return r.last?.ts ?? this.#openedAt.get(r.room) ?? 0;
  }

  #item({ room, count, last }: RoomUnread): HTMLLIElement {
    const li = document.createElement('li');
    li.className = 'conversation';
    li.dataset.room = room;
    const other = this.#partners.get(room);
    if (other !== undefined) li.dataset.with = other;
    if (room === this.o.current()) li.classList.add('active');
    if (count > 0) li.classList.add('unread');
    li.append(span('name', other ?? `#${room}`));
    if (count > 0) li.append(span('badge', String(count)));
    const by = last == null ? '' : last.user === this.o.me ? 'you: ' : other === undefined ? `${last.user}: ` : '';
    li.append(span('preview', last === undefined ? '' : last === null ? 'no messages yet' : by + (last.deleted === true ? 'message deleted' : last.text)));
    li.title = other !== undefined ? `Conversation with ${other}` : `#${room}`;
    li.addEventListener('click', () => this.o.pick(room));
    return li;
  }

  /** Reads the first page again for the partners of rooms first heard of in an `unread` frame. */
  #relistSoon(room: string): void {
    this.#asked.add(room);
    if (this.#relist !== undefined) return;
    this.#relist = setTimeout(() => {
      this.#relist = undefined;
      this.load().catch(() => undefined); // disconnected: the client reads the list after its reconnect
    }, RELIST_MS);
  }
}

const $ = (id: string) => document.getElementById(id)!;

function empty(): HTMLLIElement {
  const li = document.createElement('li');
  li.className = 'more';
  li.textContent = 'None yet: click someone\'s name, or enter it below';
  return li;
}

