import { command, infoField, replicaLinkUp } from './redis-admin.js';

// What live cluster nodes say about the cluster: CLUSTER NODES parsed, and the checks built on it.

export const SLOTS = 16_384;

/**
 * Throws (with the reason, for waitFor's message) until the cluster is usable.
 * `--cluster create` returns before that: a primary keeps `cluster_state:fail`
 * for up to 2 s after it started (Redis delays a primary's rejoin on purpose),
 * and replicas are still doing their first sync.
 */
export async function clusterSettled(ports: readonly number[], primaries: number, replicasPerPrimary: number): Promise<true> {
  const views = await Promise.all(ports.map((port) => nodeView(port)));
  const expected = topologyKey(views[0]!.nodes);
  for (const [i, view] of views.entries()) {
    const port = ports[i]!;
    if (view.state !== 'ok') throw new Error(`node ${port} says cluster_state:${view.state}`);
    if (view.nodes.length !== ports.length) throw new Error(`node ${port} knows ${view.nodes.length} of ${ports.length} nodes`);
    const flagged = view.nodes.find((n) => n.flags.some((f) => UNHEALTHY_FLAGS.has(f)));
    if (flagged) throw new Error(`node ${port} sees ${flagged.port} as ${flagged.flags.join(',')}`);
    if (topologyKey(view.nodes) !== expected) throw new Error(`node ${port} disagrees on the slot map`);
  }
  const nodes = views[0]!.nodes;
  const owners = nodes.filter((n) => n.slots.length > 0);
  if (owners.length !== primaries) throw new Error(`${owners.length} of ${primaries} primaries own slots`);
  if (coveredSlots(owners) !== SLOTS) throw new Error(`only ${coveredSlots(owners)} of ${SLOTS} slots are covered`);
  const replicas = nodes.filter((n) => n.masterId !== null);
  if (replicas.length !== primaries * replicasPerPrimary) throw new Error(`only ${replicas.length} replicas attached`);
  await Promise.all(replicas.map((r) => replicaLinkUp(r.port)));
  return true;
}

/** A replica is usable once its first sync is done. */
export const UNHEALTHY_FLAGS = new Set(['fail', 'fail?', 'handshake', 'noaddr']);

export async function failedOver(livePorts: readonly number[], deadPort: number, slots: Array<[number, number]>): Promise<number> {
  const views = await Promise.all(livePorts.map((port) => nodeView(port)));
  let owner: number | undefined;
  for (const [i, view] of views.entries()) {
    if (view.state !== 'ok') throw new Error(`node ${livePorts[i]} says cluster_state:${view.state}`);
    for (const [from] of slots) {
      const port = view.nodes.find((n) => n.slots.some(([a, b]) => from >= a && from <= b))?.port;
      if (port === undefined || port === deadPort) throw new Error(`node ${livePorts[i]} still sees slot ${from} on ${port}`);
      if (owner !== undefined && port !== owner) throw new Error(`nodes disagree on who owns slot ${from}`);
      owner = port;
    }
  }
  if (owner === undefined) throw new Error('no live node answered');
  return owner;
}

// --- CLUSTER NODES --------------------------------------------------------

export interface ClusterNodeLine {
  id: string;
  port: number;
  flags: string[];
  /** Set on replicas. */
  masterId: string | null;
  slots: Array<[number, number]>;
}

export async function nodeView(port: number): Promise<{ state: string; nodes: ClusterNodeLine[] }> {
  const [info, nodes] = await Promise.all([command(port, 'CLUSTER', 'INFO'), command(port, 'CLUSTER', 'NODES')]);
  return { state: infoField(info, 'cluster_state') ?? 'unknown', nodes: parseClusterNodes(nodes) };
}

/** `<id> <ip:port@cport[,hostname]> <flags> <master|-> <ping> <pong> <epoch> <link> <slot>...` per line. */
export function parseClusterNodes(text: string): ClusterNodeLine[] {
  return text.split('\n').filter((line) => line.trim() !== '').map((line) => {
    const [id = '', address = '', flags = '', master = '-', , , , , ...slotTokens] = line.trim().split(' ');
    return {
      id,
      port: Number(/:(\d+)@/.exec(address)?.[1] ?? Number.NaN),
      flags: flags.split(',').filter((f) => f !== 'myself'),
      masterId: master === '-' ? null : master,
      // `[slot->-id]` / `[slot-<-id]` are migrations in progress, not ownership.
      slots: slotTokens.filter((t) => !t.startsWith('[')).map(parseSlotRange),
    };
  });
}

function parseSlotRange(token: string): [number, number] {
  const [from = '', to = from] = token.split('-');
  return [Number(from), Number(to)];
}

export function coveredSlots(nodes: readonly ClusterNodeLine[]): number {
  return nodes.reduce((sum, n) => sum + n.slots.reduce((s, [from, to]) => s + to - from + 1, 0), 0);
}

/** Who owns which slots and who replicates whom, comparable across nodes' views. */
export function topologyKey(nodes: readonly ClusterNodeLine[]): string {
  const portOf = new Map(nodes.map((n) => [n.id, n.port]));
  return nodes
    .map((n) => `${n.port}:${n.masterId === null ? n.slots.map(([a, b]) => `${a}-${b}`).join(' ') : `of ${portOf.get(n.masterId)}`}`)
    .sort()
    .join('\n');
}
