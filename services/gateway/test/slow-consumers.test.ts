import { waitFor } from '@chat/testkit';
import { CloseCode } from '@chat/protocol';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { hardBackpressureLimit, SlowConsumerGuard } from '../src/slow-consumers.js';

const LIMIT = 64 * 1024;

class FakeSocket {
  closedWith: number | undefined;
  constructor(readonly id: string, public buffered: number, private readonly all: Set<FakeSocket>) {
    all.add(this);
  }
  readonly log = pino({ enabled: false });
  bufferedAmount(): number {
    return this.buffered;
  }
  end(code: number): void {
    this.closedWith = code;
    this.all.delete(this); // uWS runs the close handler inside end()
  }
}

function setup() {
  const sockets = new Set<FakeSocket>();
  let closes = 0;
  const guard = new SlowConsumerGuard(sockets, LIMIT, { inc: () => void closes++ });
  return { sockets, guard, closes: () => closes };
}

describe('SlowConsumerGuard', () => {
  it('closes with 1013, and counts, only the sockets over the send buffer limit', () => {
    const { sockets, guard, closes } = setup();
    const reader = new FakeSocket('reader', LIMIT, sockets);
    const slow = new FakeSocket('slow', LIMIT + 1, sockets);
    guard.sweep();
    expect(slow.closedWith).toBe(CloseCode.TRY_AGAIN_LATER);
    expect(reader.closedWith).toBeUndefined();
    expect(closes()).toBe(1);
    expect([...sockets]).toEqual([reader]);
  });

  it('sweeps inline before a burst can carry a socket far past the limit', () => {
    const { sockets, guard } = setup();
    const slow = new FakeSocket('slow', LIMIT, sockets);
    const frame = 4000;
    // Each fanned-out frame lands in the slow socket's buffer; no timer ever runs here.
    while (slow.closedWith === undefined && slow.buffered < hardBackpressureLimit(LIMIT)) {
      slow.buffered += frame;
      guard.wrote(frame);
    }
    expect(slow.closedWith).toBe(CloseCode.TRY_AGAIN_LATER);
    expect(slow.buffered).toBeLessThan(2 * LIMIT + frame); // the limit, plus what was written since the last sweep
  });

  it('sweeps soon after a write, and not at all while nothing is written', async () => {
    const { sockets, guard } = setup();
    guard.start();
    const slow = new FakeSocket('slow', LIMIT + 1, sockets);
    await new Promise((r) => setTimeout(r, 250));
    expect(slow.closedWith).toBeUndefined(); // nobody wrote: no sweep ran
    guard.wrote(1);
    await waitFor(() => slow.closedWith !== undefined, { what: 'the sweep after a write' });
    expect(slow.closedWith).toBe(CloseCode.TRY_AGAIN_LATER);
    guard.stop();
  });
});
