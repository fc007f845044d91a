import type { Broker, Directory, Membership, MessageChanges, Moderation, ReadPositions, TokenRevocations } from '@chat/broker';
import type { ArchiveErasure } from '../changes/erasure.js';
import type { Config } from '../config.js';
import type { RoomHistory } from '../history.js';
import type { InFlight } from '../in-flight.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { RoomRegistry } from '../rooms/registry.js';
import type { ApiReply } from './http.js';

// What a route of the server API is, and what it works with (routes are listed in rooms-api.ts, users-api.ts, conversations-api.ts and moderation-api.ts).

export type { ApiReply };

export interface ApiDeps {
  config: Config;
  broker: Broker;
  directory: Directory;
  revocations: TokenRevocations;
  membership: Membership;
  reads: ReadPositions;
  changes: MessageChanges;
  moderation: Moderation;
  /** With the archive: erasures reach it too. */
  erasure?: ArchiveErasure;
  rooms: RoomRegistry;
  history: RoomHistory;
  inFlight: InFlight;
  metrics: Metrics;
  log: Logger;
}

/** What a route's handler gets: the path parameters (URL-decoded), the query, the headers it asked for, the body. */
export interface ApiInput {
  params: string[];
  query: URLSearchParams;
  headers: Record<string, string>;
  body: Buffer | undefined;
}

export interface ApiRoute {
  method: 'get' | 'post' | 'put' | 'del';
  /** uWS pattern; also the OpenAPI path with `{name}` for `:name`. */
  path: string;
  /** Request headers the handler reads (lower case). */
  headers?: readonly string[];
  /** Read the body (up to MAX_FRAME_BYTES). */
  body?: boolean;
  handle(input: ApiInput): Promise<ApiReply>;
}
