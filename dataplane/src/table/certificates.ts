/**
 * The certificates of one HTTPS listener of a route table: each is parsed
 * into a TLS context when the table is applied (a bad one rejects the table,
 * as a bad route does), and chosen per connection by the client's SNI: an
 * exact host, then the longest matching `*.suffix`, then the first certificate
 * without hosts.
 */
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Certificate } from '../contract/schema.ts';

/** Picks one of a listener's certificates for a server name. */
export class CertificateSelector {
  private readonly exact = new Map<string, SecureContext>();
  /** Keyed by the suffix with its dot (`*.a.test` → `.a.test`), longest first. */
  private readonly wildcards: [string, SecureContext][] = [];
  /** For names no certificate claims, and clients that send no SNI. */
  readonly fallback: SecureContext | undefined;
  /** The PEM pair of the fallback (else the first certificate), to make the listener's default context of. */
  readonly defaultPair: { cert: string; key: string } | undefined;
  /** The names of the certificates, for logs. */
  readonly names: readonly string[];

  constructor(certificates: readonly Certificate[]) {
    let fallback: SecureContext | undefined;
    for (const c of certificates) {
      let context: SecureContext;
      try {
        context = createSecureContext({ cert: c.certificatePem, key: c.privateKeyPem });
      } catch (err) {
        throw new Error(`certificate "${c.name}": ${(err as Error).message}`, { cause: err });
      }
      if (c.hosts.length === 0) fallback ??= context;
      for (const host of c.hosts.map((h) => h.toLowerCase())) {
        if (host.startsWith('*.')) {
          if (!this.wildcards.some(([s]) => s === host.slice(1))) this.wildcards.push([host.slice(1), context]);
        } else if (!this.exact.has(host)) {
          this.exact.set(host, context);
        }
      }
    }
    this.wildcards.sort((a, b) => b[0].length - a[0].length);
    this.fallback = fallback;
    const first = certificates.find((c) => c.hosts.length === 0) ?? certificates[0];
    this.defaultPair = first === undefined ? undefined : { cert: first.certificatePem, key: first.privateKeyPem };
    this.names = certificates.map((c) => c.name);
  }

  /** The context for a server name, or the fallback; undefined when nothing fits. */
  select(servername: string | undefined): SecureContext | undefined {
    if (servername === undefined || servername === '') return this.fallback;
    const name = servername.toLowerCase().replace(/\.$/, '');
    const exact = this.exact.get(name);
    if (exact !== undefined) return exact;
    // A wildcard needs at least one label before its suffix, as route hosts do.
    for (const [suffix, context] of this.wildcards) if (name.length > suffix.length && name.endsWith(suffix)) return context;
    return this.fallback;
  }
}
