import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { randomBytes } from 'node:crypto';

/**
 * A slow, lossy client link: a network namespace of the test's own, joined to
 * this one by a veth pair. Loss: iptables drops a share of the packets in both
 * directions inside the namespace. Delay: `tc netem` on both ends where the
 * kernel has it; where it does not (sch_netem is a module some kernels lack), a
 * relay on the host end holds every chunk for the one-way delay before passing
 * it on, in order. Clients in the namespace reach `address(port)`.
 */
export interface LossyLink {
  readonly namespace: string;
  /** How the delay is made: 'netem' or 'relay'. */
  readonly delayBy: 'netem' | 'relay';
  /** host:port to use from inside the namespace for a server on 127.0.0.1:`port` here. */
  address(port: number): Promise<string>;
  /** Drops every packet from now on (a black hole), or the share `loss` again. */
  blackHole(): void;
  /** argv prefix that runs a command inside the namespace. */
  exec(command: string, args: string[]): [string, string[]];
  remove(): void;
}

const sh = (args: string[]) => spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });

export function lossyLinkAvailable(): boolean {
  if (process.getuid?.() !== 0) return false;
  const probe = `probe-${randomBytes(3).toString('hex')}`;
  const ok = sh(['ip', 'netns', 'add', probe]).status === 0 && sh(['ip', 'netns', 'exec', probe, 'iptables', '-L', '-n']).status === 0;
  sh(['ip', 'netns', 'del', probe]);
  return ok;
}

export function createLossyLink({ delayMs, loss }: { delayMs: number; loss: number }): LossyLink {
  const id = randomBytes(3).toString('hex');
  const namespace = `chatlink-${id}`;
  const host = `vh${id}`;
  const inner = `vn${id}`;
  const octet = 16 + (randomBytes(1)[0]! % 200);
  const hostIp = `10.${octet}.${randomBytes(1)[0]! % 250}.1`;
  const innerIp = hostIp.replace(/\.1$/, '.2');
  const relays: net.Server[] = [];
  const must = (args: string[]) => {
    const result = sh(args);
    if (result.status !== 0) throw new Error(`${args.join(' ')} failed: ${result.stderr}`);
  };
  const inNs = (args: string[]) => ['ip', 'netns', 'exec', namespace, ...args];
  const remove = () => {
    for (const relay of relays) relay.close();
    sh(['ip', 'link', 'del', host]);
    sh(['ip', 'netns', 'del', namespace]);
  };
  try {
    must(['ip', 'netns', 'add', namespace]);
    must(['ip', 'link', 'add', host, 'type', 'veth', 'peer', 'name', inner]);
    must(['ip', 'link', 'set', inner, 'netns', namespace]);
    must(['ip', 'addr', 'add', `${hostIp}/30`, 'dev', host]);
    must(['ip', 'link', 'set', host, 'up']);
    must(inNs(['ip', 'addr', 'add', `${innerIp}/30`, 'dev', inner]));
    must(inNs(['ip', 'link', 'set', inner, 'up']));
    must(inNs(['ip', 'link', 'set', 'lo', 'up']));
    const dropShare = (share: number) => ['-m', 'statistic', '--mode', 'random', '--probability', String(share), '-j', 'DROP'];
    for (const chain of ['INPUT', 'OUTPUT']) must(inNs(['iptables', '-A', chain, ...dropShare(loss)]));
    const netem = sh(['tc', 'qdisc', 'add', 'dev', host, 'root', 'netem', 'delay', `${delayMs / 2}ms`]).status === 0
      && sh(inNs(['tc', 'qdisc', 'add', 'dev', inner, 'root', 'netem', 'delay', `${delayMs / 2}ms`])).status === 0;
    return {
      namespace,
      delayBy: netem ? 'netem' : 'relay',
      async address(port) {
        // A server on 127.0.0.1 is not reachable from the namespace: a relay on the host end of the link passes it on.
        const relay = net.createServer((client) => {
          const server = net.connect(port, '127.0.0.1');
          const pass = (from: net.Socket, to: net.Socket) => from.on('data', (chunk) => {
            if (netem) to.write(chunk);
            else setTimeout(() => to.writable && to.write(chunk), delayMs / 2);
          });
          pass(client, server);
          pass(server, client);
          const end = () => setTimeout(() => { client.destroy(); server.destroy(); }, netem ? 0 : delayMs / 2);
          client.on('close', end).on('error', end);
          server.on('close', end).on('error', end);
        });
        relays.push(relay);
        await new Promise<void>((resolve) => relay.listen(0, hostIp, resolve));
        return `${hostIp}:${(relay.address() as net.AddressInfo).port}`;
      },
      blackHole() {
        for (const chain of ['INPUT', 'OUTPUT']) must(inNs(['iptables', '-I', chain, '-j', 'DROP']));
      },
      exec: (command, args) => ['ip', ['netns', 'exec', namespace, command, ...args]],
      remove,
    };
  } catch (err) {
    remove();
    throw err;
  }
}
