/**
 * The TLS listener's own certificates (`server.tls`): several, chosen by
 * SNI, read from files and read again when the files change (cert-manager
 * renewing a Secret mounted as a volume, an operator replacing a file), so
 * that new handshakes get the new certificate while open connections keep
 * theirs. A change that does not load (a half-written file, a key that does
 * not match) is logged and the previous certificates keep serving.
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions, type TlsOptions } from 'node:tls';
import path from 'node:path';
import type { GatewayConfig } from '../config/schema.ts';
import type { Certificate } from '../contract/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { CertificateSelector } from '../table/certificates.ts';

type TlsSettings = NonNullable<GatewayConfig['server']['tls']>;

/** The DNS names of a certificate's subjectAltName. */
function dnsNames(pem: string): string[] {
  const san = new X509Certificate(pem).subjectAltName ?? '';
  return san
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
}

function read(file: string, field: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`server.tls.${field}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/** One reading of the files: the certificates by SNI, and the options every context and the listener get. */
export interface LoadedTls {
  readonly selector: CertificateSelector;
  /** For the listener's default context: clients without SNI, names nothing claims. */
  readonly serverOptions: TlsOptions;
  /** Minimum version and client CA, for contexts made from the route table's certificates. */
  readonly contextOptions: SecureContextOptions;
  /** The certificates' names and hosts, for logs. */
  readonly summary: { name: string; hosts: string[]; notAfter: string }[];
}

/** Reads `server.tls`'s files; throws an Error naming the field and file on anything unusable. */
export function loadListenerTls(t: TlsSettings): LoadedTls {
  const certificates: Certificate[] = [];
  const summary: LoadedTls['summary'] = [];
  const add = (certFile: string, keyFile: string, hosts: string[] | undefined, field: string): void => {
    const certificatePem = read(certFile, `${field}.cert_file`);
    const privateKeyPem = read(keyFile, `${field}.key_file`);
    let names: string[];
    let notAfter: string;
    try {
      const x = new X509Certificate(certificatePem);
      notAfter = x.validTo;
      names = hosts?.map((h) => h.toLowerCase()) ?? dnsNames(certificatePem);
    } catch (err) {
      throw new Error(`server.tls.${field}.cert_file: ${certFile} holds no PEM certificate: ${(err as Error).message}`, { cause: err });
    }
    if (names.length === 0) throw new Error(`server.tls.${field}: ${certFile} names no DNS host in its subjectAltName; list the names it serves in hosts`);
    certificates.push({ name: certFile, listener: 'https', hosts: names, certificatePem, privateKeyPem });
    summary.push({ name: certFile, hosts: names, notAfter });
  };
  (t.certificates ?? []).forEach((c, i) => add(c.cert_file, c.key_file, c.hosts, `certificates[${i}]`));
  let defaultPair: { cert: string; key: string } | undefined;
  if (t.cert_file !== undefined && t.key_file !== undefined) {
    const cert = read(t.cert_file, 'cert_file');
    const key = read(t.key_file, 'key_file');
    defaultPair = { cert, key };
    // The default serves every name the others do not claim: a certificate without hosts.
    certificates.push({ name: t.cert_file, listener: 'https', hosts: [], certificatePem: cert, privateKeyPem: key });
    let notAfter = '';
    try {
      notAfter = new X509Certificate(cert).validTo;
    } catch (err) {
      throw new Error(`server.tls.cert_file: ${t.cert_file} holds no PEM certificate: ${(err as Error).message}`, { cause: err });
    }
    summary.push({ name: t.cert_file, hosts: [], notAfter });
  }
  const ca = t.client_auth ? read(t.client_auth.ca_file, 'client_auth.ca_file') : undefined;
  const contextOptions: SecureContextOptions = { minVersion: t.min_version, ...(ca !== undefined ? { ca } : {}) };
  let selector: CertificateSelector;
  try {
    selector = new CertificateSelector(certificates, contextOptions);
  } catch (err) {
    throw new Error(`server.tls: ${(err as Error).message}`, { cause: err });
  }
  const pair = defaultPair ?? selector.defaultPair;
  const serverOptions: TlsOptions = {
    ...contextOptions,
    ...(pair !== undefined ? { cert: pair.cert, key: pair.key } : {}),
    ...(t.client_auth ? { requestCert: true, rejectUnauthorized: t.client_auth.required } : {}),
  };
  return { selector, serverOptions, contextOptions, summary };
}

/**
 * The `https` listener's certificates, kept current: `current` is replaced
 * when a watched file changes and the new files load.
 */
export class ListenerTls {
  current: LoadedTls;
  private readonly settings: TlsSettings;
  private readonly log: Logger;
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Contexts made from route-table certificates with this listener's options, per certificate object. */
  private tableContexts = new WeakMap<Certificate, SecureContext>();

  constructor(settings: TlsSettings, log: Logger) {
    this.settings = settings;
    this.log = log;
    this.current = loadListenerTls(settings);
  }

  /**
   * The context for a client's server name: a route-table certificate that
   * names it, else one of the listener's own that does, else the table's
   * fallback; undefined leaves the listener's default (`cert_file`).
   */
  select(servername: string | undefined, table: CertificateSelector | undefined): SecureContext | undefined {
    const named = table?.certificateFor(servername, false);
    if (named !== undefined) return this.tableContext(named);
    const own = this.current.selector.certificateFor(servername, false);
    if (own !== undefined) return this.current.selector.select(servername);
    const fallback = table?.certificateFor(servername, true);
    return fallback === undefined ? undefined : this.tableContext(fallback);
  }

  private tableContext(c: Certificate): SecureContext | undefined {
    let ctx = this.tableContexts.get(c);
    if (ctx === undefined) {
      ctx = createSecureContext({ ...this.current.contextOptions, cert: c.certificatePem, key: c.privateKeyPem });
      this.tableContexts.set(c, ctx);
    }
    return ctx;
  }

  /** Watches every file; `onReload` gets each set of certificates that loaded. */
  watch(onReload: (loaded: LoadedTls) => void): void {
    const t = this.settings;
    const files = [t.cert_file, t.key_file, t.client_auth?.ca_file, ...(t.certificates ?? []).flatMap((c) => [c.cert_file, c.key_file])].filter((f): f is string => f !== undefined);
    const byDir = new Map<string, Set<string>>();
    for (const f of files) {
      const dir = path.dirname(path.resolve(f));
      if (!byDir.has(dir)) byDir.set(dir, new Set());
      byDir.get(dir)?.add(path.basename(f));
    }
    // Directories, not files: editors and Kubernetes volumes replace a file (or the `..data` symlink) rather than write into it.
    for (const [dir, names] of byDir) {
      try {
        const w = watch(dir, (_event, name) => {
          if (name !== null && !names.has(name) && name !== '..data') return;
          clearTimeout(this.timer);
          this.timer = setTimeout(() => this.reload(onReload), 200);
        });
        w.on('error', (err) => this.log.warn({ event: 'tls_watch_failed', dir, error: err.message }, 'cannot watch the TLS files; certificates are read again at restart'));
        this.watchers.push(w);
      } catch (err) {
        this.log.warn({ event: 'tls_watch_failed', dir, error: (err as Error).message }, 'cannot watch the TLS files; certificates are read again at restart');
      }
    }
  }

  /** Reads the files again; the old certificates keep serving if the new ones do not load. */
  reload(onReload: (loaded: LoadedTls) => void): boolean {
    let loaded: LoadedTls;
    try {
      loaded = loadListenerTls(this.settings);
    } catch (err) {
      this.log.error({ event: 'tls_reload_failed', error: (err as Error).message }, 'TLS certificates not reloaded; the previous ones keep serving');
      return false;
    }
    this.current = loaded;
    this.tableContexts = new WeakMap();
    onReload(loaded);
    this.log.info({ event: 'tls_reloaded', certificates: loaded.summary }, 'TLS certificates reloaded');
    return true;
  }

  close(): void {
    clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }
}

/**
 * With `client_auth.required: false` a client may come without a
 * certificate, but one that presents a certificate the CA does not vouch for
 * is refused, as it would be with `required: true`.
 */
export function refuseUnverifiedClientCertificates(socket: TLSSocket): void {
  if (socket.authorized) return;
  const peer = socket.getPeerCertificate();
  if (peer !== null && Object.keys(peer).length > 0) socket.destroy();
}
