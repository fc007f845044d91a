/**
 * The client's address for per-IP limits: the socket's peer, unless that peer is
 * a trusted proxy, in which case the right-most X-Forwarded-For entry that is not
 * itself a trusted proxy (entries further left are the client's to forge).
 */
export function clientAddress(peer: string, forwardedFor: string, trustedProxies: ReadonlySet<string>): string {
  if (!trustedProxies.has(peer) || forwardedFor === '') return peer;
  const hops = forwardedFor.split(',').map((h) => h.trim()).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) if (!trustedProxies.has(hops[i]!)) return hops[i]!;
  return hops[0] ?? peer;
}

/** uWS reports IPv4 peers as IPv4-mapped IPv6 text. */
export function normalizeAddress(text: string): string {
  return text.startsWith('::ffff:') ? text.slice(7) : text;
}
