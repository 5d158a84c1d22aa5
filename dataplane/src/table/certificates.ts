/**
 * The certificates of one HTTPS listener of a route table: each is parsed
 * into a TLS context when the table is applied (a bad one rejects the table,
 * as a bad route does), and chosen per connection by the client's SNI: an
 * exact host, then the longest matching `*.suffix`, then the first certificate
 * without hosts.
 */
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { Certificate } from '../contract/schema.ts';

/** Picks one of a listener's certificates for a server name. */
export class CertificateSelector {
  private readonly exact = new Map<string, Certificate>();
  /** Keyed by the suffix with its dot (`*.a.test` → `.a.test`), longest first. */
  private readonly wildcards: [string, Certificate][] = [];
  private readonly contexts = new Map<Certificate, SecureContext>();
  /** For names no certificate claims. */
  private readonly fallbackCertificate: Certificate | undefined;
  /** For names no certificate claims, and clients that send no SNI. */
  readonly fallback: SecureContext | undefined;
  /** The PEM pair of the fallback (else the first certificate), to make the listener's default context of. */
  readonly defaultPair: { cert: string; key: string } | undefined;
  /** The names of the certificates, for logs. */
  readonly names: readonly string[];

  /** `contextOptions` (a minimum version, a CA for client certificates) go into every context. */
  constructor(certificates: readonly Certificate[], contextOptions: SecureContextOptions = {}) {
    for (const c of certificates) {
      try {
        this.contexts.set(c, createSecureContext({ ...contextOptions, cert: c.certificatePem, key: c.privateKeyPem }));
      } catch (err) {
        throw new Error(`certificate "${c.name}": ${(err as Error).message}`, { cause: err });
      }
      for (const host of c.hosts.map((h) => h.toLowerCase())) {
        if (host.startsWith('*.')) {
          if (!this.wildcards.some(([s]) => s === host.slice(1))) this.wildcards.push([host.slice(1), c]);
        } else if (!this.exact.has(host)) {
          this.exact.set(host, c);
        }
      }
    }
    this.wildcards.sort((a, b) => b[0].length - a[0].length);
    this.fallbackCertificate = certificates.find((c) => c.hosts.length === 0);
    this.fallback = this.fallbackCertificate && this.contexts.get(this.fallbackCertificate);
    const first = this.fallbackCertificate ?? certificates[0];
    this.defaultPair = first === undefined ? undefined : { cert: first.certificatePem, key: first.privateKeyPem };
    this.names = certificates.map((c) => c.name);
  }

  /** The context for a server name, or the fallback; undefined when nothing fits. */
  select(servername: string | undefined): SecureContext | undefined {
    const c = this.certificateFor(servername, true);
    return c && this.contexts.get(c);
  }

  /**
   * The certificate for a server name: one that names it exactly, else the
   * longest wildcard, else (with `fallback`) the one without hosts.
   */
  certificateFor(servername: string | undefined, fallback: boolean): Certificate | undefined {
    if (servername === undefined || servername === '') return fallback ? this.fallbackCertificate : undefined;
    const name = servername.toLowerCase().replace(/\.$/, '');
    const exact = this.exact.get(name);
    if (exact !== undefined) return exact;
    // A wildcard needs at least one label before its suffix, as route hosts do.
    for (const [suffix, c] of this.wildcards) if (name.length > suffix.length && name.endsWith(suffix)) return c;
    return fallback ? this.fallbackCertificate : undefined;
  }
}
