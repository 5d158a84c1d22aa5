/**
 * A KubeConfig that reuses one HTTP dispatcher for every API request.
 *
 * @kubernetes/client-node 2.0 builds a new undici Agent in
 * `applySecurityAuthentication` for every request, so every status patch and
 * Event opened a new TLS connection with a new secure context. Ingesting
 * thousands of routes then cost the operator most of its CPU in TLS setup
 * (docs/performance.md). Here the first dispatcher made for a given cluster and
 * credentials is kept, and its keep-alive connections serve every later request.
 *
 * Credentials in headers (bearer tokens, which rotate) are still applied per
 * request by the client. The dispatcher is renewed every few minutes, so client
 * certificates or CAs replaced on disk are picked up as the client would.
 */
import type { Dispatcher } from 'undici';
import { KubeConfig } from '@kubernetes/client-node';

type RequestContext = Parameters<KubeConfig['applySecurityAuthentication']>[0];

const RENEW_MS = 5 * 60_000;

/** KubeConfig with one shared connection pool to the API server. */
export class PooledKubeConfig extends KubeConfig {
  private shared: { key: string; dispatcher: Dispatcher; since: number } | undefined;

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    if (fresh === undefined) return;
    const cluster = this.getCurrentCluster();
    const user = this.getCurrentUser();
    // What the dispatcher's TLS setup depends on (files are named here, and re-read at each renewal).
    const key = JSON.stringify([cluster?.server, cluster?.caData, cluster?.caFile, cluster?.skipTLSVerify, cluster?.tlsServerName, cluster?.proxyUrl, user?.certData, user?.certFile, user?.keyData, user?.keyFile]);
    const now = Date.now();
    const current = this.shared;
    if (current && current.key === key && now - current.since < RENEW_MS) {
      context.setDispatcher(current.dispatcher);
      // The one just built never connected; closing it frees nothing but its bookkeeping.
      void fresh.close().catch(() => undefined);
      return;
    }
    this.shared = { key, dispatcher: fresh, since: now };
    // Requests still on the old pool finish before it closes.
    if (current) void current.dispatcher.close().catch(() => undefined);
  }

  /**
   * Destroys the shared connections, so that the next request opens new ones. For a
   * caller whose request timed out: a connection that a middlebox dropped without a
   * word stays wedged in the pool (an aborted request does not free it), and every
   * request after would queue behind it. Requests on it fail, and watches restart.
   */
  dropConnections(): void {
    const current = this.shared;
    this.shared = undefined;
    if (current) void current.dispatcher.destroy().catch(() => undefined);
  }
}
