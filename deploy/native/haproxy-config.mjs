// The HAProxy configuration `npm run cluster` runs (deploy/native/cluster.mjs), in a
// module of its own so that tests/deploy-static.test.ts checks exactly this text.
// It is compose's deploy/haproxy/haproxy.cfg with local addresses instead of Docker
// DNS; timeouts, balancing and the event-stream settings are compose's, unchanged.
import { readFileSync } from 'node:fs';

const COMPOSE_CONFIG = new URL('../haproxy/haproxy.cfg', import.meta.url);

/**
 * @param {object} options
 * @param {number} options.lbPort where clients connect (127.0.0.1)
 * @param {number} options.statsPort HAProxy's stats page
 * @param {Array<{ name: string, port: number }>} options.servers the gateways, on 127.0.0.1
 * @param {{ port: number, pem: string } | undefined} options.tls the TLS frontend, or none
 * @param {number} options.maxconn fits the shell's file-descriptor limit (HAProxy needs two per connection)
 * @param {string} [options.template] the configuration to start from (compose's by default)
 * @returns {string}
 */
export function localHaproxyConfig({ lbPort, statsPort, servers, tls, maxconn, template = readFileSync(COMPOSE_CONFIG, 'utf8') }) {
  const serverLines = servers.map((s) => `  server ${s.name} 127.0.0.1:${s.port} check`).join('\n');
  const tlsFrontend = (block) => (tls === undefined ? '' : block
    .replace(/^  bind :8443 ssl crt \S+/m, `  bind 127.0.0.1:${tls.port} ssl crt ${tls.pem}`));
  const replace = (text, pattern, by, what) => {
    if (!pattern.test(text)) throw new Error(`deploy/haproxy/haproxy.cfg has no ${what} any more: update deploy/native/haproxy-config.mjs`);
    return text.replace(pattern, by);
  };
  let config = template;
  config = replace(config, /^  maxconn \d+$/m, `  maxconn ${maxconn}`, 'global maxconn');
  config = replace(config, /^resolvers docker\n(?: .*\n)*/m, '', 'resolvers docker section');
  config = replace(config, /  # BEGIN servers\n[\s\S]*?  # END servers\n/, `${serverLines}\n`, 'BEGIN/END servers block');
  config = replace(config, /^# BEGIN tls\n([\s\S]*?)# END tls\n/m, (_, block) => tlsFrontend(block), 'BEGIN/END tls block');
  config = replace(config, /^  bind :8080$/m, `  bind 127.0.0.1:${lbPort}`, 'bind :8080');
  config = replace(config, /^  bind :8404$/m, `  bind 127.0.0.1:${statsPort}`, 'bind :8404');
  return config;
}
