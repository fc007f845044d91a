import type { EventRecording } from '../cluster-events.js';
import type { KeySpace } from './keys.js';
import type { EventArgs } from './scripts.js';
import { SlotKeys } from './slot-keys.js';

/** What the recording scripts need to record cluster events: the stream of a key's slot, and the four event arguments. */
export class EventRecorder {
  readonly streams: SlotKeys;
  readonly #types: string;
  readonly #wake: string;
  readonly #limit: number | '';
  readonly #incarnation: string;
  #calls = 0;

  constructor(keys: KeySpace, recording: EventRecording | undefined, sharded: boolean, incarnation: string) {
    this.streams = new SlotKeys((tag) => keys.events(tag), sharded);
    const types = recording?.types ?? [];
    this.#types = types.length === 0 ? '' : `,${types.join(',')},`;
    this.#wake = keys.eventsWake();
    this.#limit = recording?.backlogLimit ?? '';
    this.#incarnation = incarnation;
  }

  get on(): boolean {
    return this.#types !== '';
  }

  /** The event stream of `key`'s slot; with recording off, `key` itself (a script must still name a key of its slot). */
  streamOf(key: string): string {
    return this.on ? this.streams.of(key) : key;
  }

  /** A fresh nonce per call keeps every event id unique across the cluster. */
  args(): EventArgs {
    if (!this.on) return ['', '', '', ''];
    return [this.#types, this.#wake, this.#limit, `${this.#incarnation}.${(++this.#calls).toString(36)}`];
  }
}
