/**
 * Who the client is: decided once per request, from the TCP peer and, when
 * `server.trusted_proxies` says so, the X-Forwarded-For entries that trusted
 * proxies appended. The same answer feeds the rate-limit key, the access
 * log, the request span and the forwarding headers sent upstream
 * (X-Forwarded-For, X-Real-IP, Forwarded).
 *
 * X-Forwarded-For is read from the right, one hop at a time, starting at the
 * peer: while the current hop is trusted, the entry to its left is the
 * address that hop saw, so it becomes the current hop. The first hop that is
 * not trusted is the client. Entries further left were written by the client
 * (or by proxies nobody vouches for) and are dropped: the X-Forwarded-For the
 * upstream receives starts with the client the gateway determined. Which hops
 * are trusted:
 *
 * - nothing (the default): the peer is the client, whatever its address.
 *   Private and loopback peers are not special (Envoy's CVE-2024-45806 was
 *   trusting RFC 1918 peers by default);
 * - `cidrs` alone: a hop whose address is in one of the blocks, like nginx's
 *   `set_real_ip_from` with `real_ip_recursive on`;
 * - `hops` alone: the nearest `hops` hops, whatever their addresses (Envoy's
 *   `xff_num_trusted_hops`), for a fixed chain of load balancers;
 * - both: the same count, but only when the peer is in `cidrs`, so that a
 *   client reaching the gateway around the load balancer is not believed.
 *
 * An entry that is not an IP address (with an optional port) stops the walk
 * at the hop before it.
 */
import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

/** `server.trusted_proxies`. */
export interface TrustedProxies {
  readonly cidrs: readonly string[];
  readonly hops: number;
}

/** The client as the gateway determined it. */
export interface ClientAddress {
  /** The client's IP address (IPv4-mapped IPv6 written as IPv4), or '' when the socket has none. */
  readonly client: string;
  /** From the client to the gateway's peer: the X-Forwarded-For sent upstream. `chain[0]` is `client`. */
  readonly chain: readonly string[];
}

const CIDR = /^([^/]+)(?:\/(\d{1,3}))?$/;

/** Why `text` is not an IP address or CIDR block, or undefined when it is one. */
export function cidrProblem(text: string): string | undefined {
  const m = CIDR.exec(text.trim());
  const family = m ? isIP(m[1] as string) : 0;
  if (!m || family === 0) return `"${text}" is not an IP address or CIDR block; expected e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32`;
  if (m[2] !== undefined && Number(m[2]) > (family === 4 ? 32 : 128)) return `"${text}": the prefix length must be at most ${family === 4 ? 32 : 128}`;
  return undefined;
}

/** An address as written in X-Forwarded-For ("1.2.3.4:5678", "[2001:db8::1]:443", "::ffff:1.2.3.4") made bare, or undefined. */
export function bareAddress(entry: string): string | undefined {
  let text = entry.trim();
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) return undefined;
    text = text.slice(1, end);
  } else {
    const colon = text.indexOf(':');
    if (colon > 0 && colon === text.lastIndexOf(':')) text = text.slice(0, colon);
  }
  const family = isIP(text);
  if (family === 0) return undefined;
  if (family === 6 && text.toLowerCase().startsWith('::ffff:') && isIP(text.slice(7)) === 4) return text.slice(7);
  return text;
}

/** Decides the client address of each request from `server.trusted_proxies`. */
export class ClientAddressResolver {
  private readonly cidrs: BlockList | undefined;
  private readonly hops: number;

  constructor(settings: TrustedProxies = { cidrs: [], hops: 0 }) {
    this.hops = settings.hops;
    if (settings.cidrs.length > 0) {
      const list = new BlockList();
      for (const text of settings.cidrs) {
        const problem = cidrProblem(text);
        if (problem !== undefined) throw new Error(`server.trusted_proxies.cidrs: ${problem}`);
        const [address, prefix] = text.trim().split('/') as [string, string | undefined];
        const family = isIP(address) === 4 ? 'ipv4' : 'ipv6';
        if (prefix === undefined) list.addAddress(address, family);
        else list.addSubnet(address, Number(prefix), family);
      }
      this.cidrs = list;
    }
  }

  /** Whether any X-Forwarded-For is believed at all. */
  get trustsProxies(): boolean {
    return this.cidrs !== undefined || this.hops > 0;
  }

  /** The client of a request. */
  resolve(req: IncomingMessage): ClientAddress {
    const peer = bareAddress(req.socket.remoteAddress ?? '') ?? '';
    if (!this.trustsProxies) return { client: peer, chain: [peer] };
    return this.walk(peer, forwardedFor(req.rawHeaders));
  }

  /** The walk over `entries` (X-Forwarded-For, left to right) starting at `peer`. */
  walk(peer: string, entries: readonly string[]): ClientAddress {
    const chain = [peer];
    let current = peer;
    for (let i = entries.length - 1, hop = 0; i >= 0 && this.trusts(current, hop); i--, hop++) {
      const next = bareAddress(entries[i] as string);
      if (next === undefined) break;
      chain.push(next);
      current = next;
    }
    return { client: current, chain: chain.reverse() };
  }

  /** Whether the `hop`-th hop from the gateway (0: the peer), at `address`, is a trusted proxy. */
  private trusts(address: string, hop: number): boolean {
    const inCidrs = (): boolean => address !== '' && this.cidrs !== undefined && this.cidrs.check(address, isIP(address) === 4 ? 'ipv4' : 'ipv6');
    if (this.hops === 0) return inCidrs();
    if (hop >= this.hops) return false;
    return this.cidrs === undefined || hop > 0 || inCidrs();
  }
}

/** The entries of every X-Forwarded-For line, in order. */
function forwardedFor(rawHeaders: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length !== 15 || name.toLowerCase() !== 'x-forwarded-for') continue;
    for (const part of (rawHeaders[i + 1] as string).split(',')) {
      const entry = part.trim();
      if (entry !== '') out.push(entry);
    }
  }
  return out;
}
