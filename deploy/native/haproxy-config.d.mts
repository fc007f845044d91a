/** Types of haproxy-config.mjs, for the tests that import it. */
export function localHaproxyConfig(options: {
  lbPort: number;
  statsPort: number;
  servers: Array<{ name: string; port: number }>;
  tls: { port: number; pem: string } | undefined;
  maxconn: number;
  template?: string;
}): string;
