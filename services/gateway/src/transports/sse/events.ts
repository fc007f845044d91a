import type { Frame } from '../frame-sink.js';

const DATA = Buffer.from('data: ');
const END = Buffer.from('\n\n');
/** An SSE comment: keeps proxies and the client's dead-stream timer from giving up on a quiet stream. */
export const HEARTBEAT = Buffer.from(':\n\n');

/**
 * One frame as an SSE event, `data: <frame>` and a blank line. Frames are JSON
 * on one line (JSON escapes newlines), so one `data:` field always holds one.
 */
export function frameEvent(frame: Frame): Buffer {
  const body = typeof frame === 'string' ? Buffer.from(frame) : frame;
  return Buffer.concat([DATA, body, END], DATA.length + body.length + END.length);
}
