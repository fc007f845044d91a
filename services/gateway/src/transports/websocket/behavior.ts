import type { HttpResponse, WebSocketBehavior } from 'uWebSockets.js';
import type { Config } from '../../config.js';
import { bearerToken, watchAbort } from '../../http/request.js';
import { hardBackpressureLimit } from '../../slow-consumers.js';
import { admit, peerAddress, type AdmissionContext } from '../admission.js';
import type { Connections } from '../connections.js';
import { WebSocketSink, type SocketData } from './socket-sink.js';

/**
 * uWS closes a connection whose frame exceeds its own limit without a close
 * frame (the client sees 1006). Frames up to this size are read so the
 * gateway can answer an oversize frame with the protocol's 1009.
 */
const READ_LIMIT_BYTES = 2 * 1024 * 1024; // also what one stalled partial frame can pin, until the idle timeout

function refuse(res: HttpResponse, status: string, message: string): void {
  res.writeStatus(status).writeHeader('Content-Type', 'text/plain').end(message);
}

/** `/ws`: the WebSocket transport. */
export function createSocketBehavior(config: Config, admission: AdmissionContext, connections: Connections): WebSocketBehavior<SocketData> {
  return {
    maxPayloadLength: Math.max(READ_LIMIT_BYTES, config.maxFrameBytes + 1),
    // SlowConsumerGuard closes a socket over SEND_BUFFER_BYTES with 1013. This
    // is the last resort for a burst that outruns it: uWS cuts the socket rather than
    // drop a message, so a client never sees a gap.
    maxBackpressure: hardBackpressureLimit(config.sendBufferBytes),
    closeOnBackpressureLimit: true as unknown as number,
    idleTimeout: config.idleTimeoutSec,
    sendPingsAutomatically: true,

    upgrade(res, req, context) {
      // Everything from `req` now: it is gone once this handler returns.
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const knock = {
        token: req.getQuery('token') || bearerToken(req.getHeader('authorization')),
        user: req.getQuery('user'),
        mod: req.getQuery('mod'),
        origin: req.getHeader('origin'),
        peer: peerAddress(res),
        forwardedFor: req.getHeader('x-forwarded-for'),
      };
      const aborted = watchAbort(res);
      void admit(admission, knock, 'ws').then((admitted) => {
        if (aborted.value) return;
        if (!admitted.ok) return res.cork(() => refuse(res, admitted.status, admitted.reason));
        // Not inside res.cork(): in this uWS build, cork() after an upgrade made outside the
        // upgrade handler can shut the new socket down a millisecond after `open`
        // (uNetworking/uWebSockets#1929). Seen here as clients cut 1006 before `welcome`.
        res.upgrade<SocketData>({ session: admitted.session }, key, protocol, extensions, context);
      });
    },

    open(ws) {
      connections.opened(ws.getUserData().session, new WebSocketSink(ws));
    },

    message(ws, data, isBinary) {
      connections.received(ws.getUserData().session, data, isBinary);
    },

    close(ws, code) {
      connections.closed(ws.getUserData().session, code);
    },
  };
}
