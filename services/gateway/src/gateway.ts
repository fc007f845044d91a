import { randomBytes } from 'node:crypto';
import type { ConversationStore } from '@chat/archive';
import { streamCapacity, type Broker, type ConversationRestore, type Directory, type EventFeed, type Membership, type MessageChanges, type Moderation, type OfflineNotices, type ReadPositions, type TokenRevocations } from '@chat/broker';
import { WebhookDispatcher } from '@chat/webhooks';
import { CloseCode } from '@chat/protocol';
import { Registry } from 'prom-client';
import uWS from 'uWebSockets.js';
import { Authenticator } from './auth.js';
import { CommandHandler } from './commands.js';
import { ConnectionLimits } from './connection-limits.js';
import type { Config } from './config.js';
import { drainSessions } from './drain.js';
import { registerHealthRoutes, registerMetricsRoute, registerNotFound, registerWebPage, type Readiness } from './http-routes.js';
import { RoomHistory, type HistoryArchive } from './history.js';
import { InFlight } from './in-flight.js';
import type { Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import { Relay } from './relay.js';
import { registerServerApi } from './api/server-api.js';
import { RoomChannels } from './rooms/room-channels.js';
import { RoomRegistry } from './rooms/registry.js';
import { ConversationCommands } from './conversations/commands.js';
import { OfflineNotifier } from './conversations/offline-notifier.js';
import { ChangeCommands } from './changes/commands.js';
import type { ArchiveErasure } from './changes/erasure.js';
import { DurableMembership, DurableReadPositions } from './conversations/durable.js';
import { ConversationRestorer } from './conversations/restorer.js';
import { UnreadRelay } from './conversations/unread-relay.js';
import type { Session } from './session.js';
import { SlowConsumerGuard } from './slow-consumers.js';
import type { AdmissionContext } from './transports/admission.js';
import { Connections } from './transports/connections.js';
import { Cors } from './transports/cors.js';
import { LocalStreams } from './transports/sse/local-streams.js';
import { PostRelay } from './transports/sse/post-relay.js';
import { registerEventStreams } from './transports/sse/routes.js';
import { createSocketBehavior } from './transports/websocket/behavior.js';
import { UserCommands } from './user-commands.js';
import { UserRegistry } from './users.js';
import { createWebhookMetrics } from './webhook-metrics.js';

export interface GatewayOptions {
  config: Config;
  broker: Broker;
  /** Who is where, for the server API; over the same state as the broker. */
  directory: Directory;
  /** Token revocations every connect is checked against (server API: disconnect with revokeTokens). */
  revocations: TokenRevocations;
  /** Members of members-only rooms, and their read positions; over the same state as the broker. */
  membership: Membership;
  reads: ReadPositions;
  /** Edits, deletes and reactions of the broker's messages, and who moderates and who is banned or muted where. */
  changes: MessageChanges;
  moderation: Moderation;
  /** Due rooms whose offline members the `member.unread` webhook tells; when webhooks deliver that event. */
  notices?: OfflineNotices;
  /**
   * With the archive: membership and read positions are kept in it too, and put
   * back from it when Redis comes back without them (see ConversationRestorer).
   */
  durable?: { store: ConversationStore; restore: ConversationRestore };
  /** The recorded cluster events, delivered by this node's webhook dispatcher when webhooks are on. */
  events?: EventFeed;
  /** History past the Redis window (DATABASE_URL); absent: the stream is all there is. */
  archive?: HistoryArchive;
  /** With the archive: what an erasure does there. */
  erasure?: ArchiveErasure;
  log: Logger;
  /** Injected so two gateways in one process keep separate metrics. */
  registry?: Registry;
}

export interface Gateway {
  /** Starts listening; resolves with the bound port (and the metrics port when METRICS_PORT is set). */
  listen(): Promise<number>;
  /** The bound metrics port once listening, when METRICS_PORT is set. */
  readonly metricsPort: number | undefined;
  /** Stops accepting, closes every socket with 1001 spread over DRAIN_SPREAD_MS once its sends are acked, stops the broker. */
  close(): Promise<void>;
  readiness(): Readiness;
  readonly metrics: Metrics;
}

function createDispatcher(config: Config, events: EventFeed | undefined, registry: Registry | null, log: Logger, bootId: string): WebhookDispatcher | undefined {
  if (config.webhooks === undefined || events === undefined) return undefined;
  let dispatcher: WebhookDispatcher | undefined;
  const observer = createWebhookMetrics(registry, () => dispatcher!.status);
  dispatcher = new WebhookDispatcher({
    feed: events, settings: config.webhooks, owner: `${config.nodeId}.${bootId}`, log: log.child({ component: 'webhooks' }), observer,
  });
  return dispatcher;
}

export function createGateway(options: GatewayOptions): Gateway {
  const { config, broker, directory, revocations, notices, durable, events, archive, log, registry: injected } = options;
  const membership = durable === undefined ? options.membership : new DurableMembership(options.membership, options.reads, durable.store);
  const reads = durable === undefined ? options.reads : new DurableReadPositions(options.reads, durable.store);
  const app = uWS.App();
  const registry = config.metricsEnabled ? (injected ?? new Registry()) : null;
  // With METRICS_PORT set, /metrics lives on a listener of its own, off the public port.
  const metricsApp = config.metricsPort === undefined ? app : uWS.App();
  const listenSockets: uWS.us_listen_socket[] = [];
  let metricsPort: number | undefined;
  const sessions = new Set<Session>();
  const inFlight = new InFlight();
  const bootId = randomBytes(3).toString('hex');
  let connectionCounter = 0;
  /** Not ready, no new connections; existing ones are still served (SHUTDOWN_GRACE_MS). */
  let draining = false;
  /** Sockets about to close: new sends and joins are refused so in-flight ones can finish. */
  let refusingWork = false;
  let closing: Promise<void> | undefined;

  const streams = new LocalStreams(config.sseHeartbeatMs);
  const metrics = createMetrics(registry, {
    connections: (transport) => (transport === 'sse' ? streams.size : sessions.size - streams.size),
    rooms: () => rooms.size,
    brokerUp: () => broker.up,
    brokerStats: () => broker.stats(),
    devIdentity: () => config.devIdentity,
  });
  const restorer = durable && new ConversationRestorer(durable.restore, durable.store, log.child({ component: 'conversations' }), metrics.conversationsRestored);
  const history = new RoomHistory(broker, archive, log);
  const channels = new RoomChannels(broker, log);
  const rooms = new RoomRegistry({
    app, broker, channels, log, metrics, history,
    joinHistory: config.joinHistory,
    replayLimit: streamCapacity(config.historySize),
    joinReplayLimit: archive === undefined ? streamCapacity(config.historySize) : Math.max(streamCapacity(config.historySize), config.archiveReplayLimit),
    typingIntervalMs: config.typingIntervalMs,
    listLimit: config.memberListLimit,
    liveWaitMs: config.brokerTimeoutMs,
    track: (operation) => inFlight.track(operation),
  });
  const unread: UnreadRelay = new UnreadRelay({
    membership, reads, channels, sessionsOf: (user): Iterable<Session> => users.sessionsOf(user), written: metrics.unreadFrames, log,
  });
  const users = new UserRegistry(broker, log, (operation) => inFlight.track(operation), unread);
  const conversations = new ConversationCommands({ broker, membership, reads, unread, inFlight, log });
  const changes = new ChangeCommands({ changes: options.changes, rooms, inFlight, metrics });
  const commands = new CommandHandler({
    config, broker, membership, conversations, changes, history, rooms, inFlight, log, metrics,
    refusingWork: () => refusingWork,
    conversationsReady: () => (restorer === undefined || restorer.ready ? undefined : restorer.whenReady(config.brokerTimeoutMs)),
  });
  const webhooks = createDispatcher(config, events, registry, log, bootId);
  const offlineNotifier = notices && config.unreadWindowMs !== undefined && config.webhooks !== undefined
    ? new OfflineNotifier(notices, config.unreadWindowMs, config.webhooks.sweepMs, log)
    : undefined;

  const readiness = (): Readiness => ({
    ready: broker.up && rooms.catchingUp === 0 && listenSockets.length > 0 && !draining && (restorer?.ready ?? true),
    broker: broker.up ? 'up' : 'down',
    deafSubscribers: broker.stats().deafSubscribers,
    draining,
    catchingUp: rooms.catchingUp,
    devIdentity: config.devIdentity,
    ...(webhooks !== undefined && { webhooks: webhooks.status }),
    ...(restorer !== undefined && { conversations: restorer.ready ? 'ready' : 'checking' }),
  });

  const slowConsumers = new SlowConsumerGuard(sessions, config.sendBufferBytes, metrics.backpressureCloses);
  const limits = new ConnectionLimits(config.maxConnectionsPerUser, config.maxConnectionsPerIp);
  const admission: AdmissionContext = {
    config, log, limits, revocations, slowConsumers,
    authenticator: new Authenticator(config),
    accepting: () => !draining,
    newConnectionId: () => `${config.nodeId}-${bootId}-${(++connectionCounter).toString(36)}`,
  };
  const connections = new Connections({ config, metrics, commands, rooms, users, sessions, limits });
  const postRelay = new PostRelay(broker, streams, (id, frames) => {
    const stream = streams.get(id);
    if (stream === undefined || !stream.session.open) return false;
    connections.receivedBatch(stream.session, frames);
    return true;
  }, config.brokerTimeoutMs, metrics.postRelaySeconds, log);
  app.ws('/ws', createSocketBehavior(config, admission, connections));
  registerEventStreams(app, { admission, connections, streams, relay: postRelay, cors: new Cors(config.allowedOrigins), metrics, log, maxFrameBytes: config.maxFrameBytes });
  registerWebPage(app, new URL('./public/', import.meta.url));
  registerServerApi(app, {
    config, broker, directory, revocations, membership, reads, changes: options.changes, moderation: options.moderation, erasure: options.erasure,
    rooms, history, inFlight, metrics, log,
  });
  for (const target of new Set([app, metricsApp])) {
    registerHealthRoutes(target, readiness);
    if (target === metricsApp && registry !== null) registerMetricsRoute(target, registry);
    registerNotFound(target);
  }
  slowConsumers.start();
  broker.start(new Relay(rooms, users, new UserCommands(users, commands, unread, log), unread, postRelay, slowConsumers, metrics, log, restorer));
  postRelay.start();
  webhooks?.start();
  offlineNotifier?.start();

  return {
    metrics,
    readiness,
    get metricsPort() {
      return metricsPort;
    },
    async listen() {
      const port = await listenOn(app, config.host, config.port, listenSockets);
      if (config.metricsPort !== undefined) metricsPort = await listenOn(metricsApp, config.host, config.metricsPort, listenSockets);
      return port;
    },
    close() {
      closing ??= (async () => {
        draining = true; // /readyz says so at once; new upgrades get 503
        if (config.shutdownGraceMs > 0) await new Promise((resolve) => setTimeout(resolve, config.shutdownGraceMs));
        for (const socket of listenSockets.splice(0)) uWS.us_listen_socket_close(socket);
        await drainSessions([...sessions], config.drainSpreadMs, CloseCode.GOING_AWAY, 'server shutting down');
        refusingWork = true;
        slowConsumers.stop();
        offlineNotifier?.stop();
        streams.stop();
        rooms.stop();
        await inFlight.idle(); // presence withdrawals of the sockets just closed
        await webhooks?.stop();
        await broker.close();
      })();
      return closing;
    },
  };
}

function listenOn(app: uWS.TemplatedApp, host: string, port: number, sockets: uWS.us_listen_socket[]): Promise<number> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => {
      if (socket === false) {
        reject(new Error(`cannot listen on ${host}:${port}`));
        return;
      }
      sockets.push(socket);
      resolve(uWS.us_socket_local_port(socket as unknown as uWS.us_socket));
    });
  });
}
