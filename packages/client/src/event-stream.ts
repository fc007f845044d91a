/**
 * A `text/event-stream` parser (the HTML standard's "event stream
 * interpretation"), fed decoded text in chunks of any size. Calls `onData`
 * with each event's data (its `data:` lines joined by newlines); comments and
 * the `event`, `id` and `retry` fields are read past: the gateway sends
 * neither, and this client does its own reconnecting.
 */
export class EventStreamParser {
  #pending = '';
  #data: string[] = [];
  #first = true;

  constructor(private readonly onData: (data: string) => void) {}

  push(text: string): void {
    let buffer = this.#pending + text;
    if (this.#first && buffer.length > 0) {
      this.#first = false;
      if (buffer.charCodeAt(0) === 0xfeff) buffer = buffer.slice(1);
    }
    let start = 0;
    for (;;) {
      const cr = buffer.indexOf('\r', start);
      const lf = buffer.indexOf('\n', start);
      const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (end < 0) break;
      // A CR at the end of the chunk may be the first half of a CRLF: wait for the next byte.
      if (end === cr && cr === buffer.length - 1) break;
      this.#line(buffer.slice(start, end));
      start = end === cr && buffer.charCodeAt(cr + 1) === 10 ? end + 2 : end + 1;
    }
    this.#pending = buffer.slice(start);
  }

  #line(line: string): void {
    if (line.length === 0) {
      if (this.#data.length > 0) {
        const data = this.#data.join('\n');
        this.#data = [];
        this.onData(data);
      }
      return;
    }
    if (line.charCodeAt(0) === 58) return; // ':' a comment: a heartbeat
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    if (field !== 'data') return;
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    this.#data.push(value);
  }
}
