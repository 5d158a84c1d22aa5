/**
 * Active health checks: each checked endpoint is probed with `GET <path>` on a
 * connection of its own, and the verdicts go to its EndpointHealth (health.ts).
 */
import { createHash } from 'node:crypto';
import { Client } from 'undici';
import { connectOptions, protocolOptions } from './pools.ts';
import type { EndpointHealth, HealthCheckSettings } from './health.ts';
import type { EndpointRuntime, UpstreamRuntime } from './upstream.ts';

/** What the checker tells the rest of the gateway (logs, metrics). */
export interface HealthEvents {
  probed(upstream: string, endpoint: EndpointRuntime, ok: boolean): void;
  healthChanged(upstream: string, endpoint: EndpointRuntime, healthy: boolean, reason: string | undefined): void;
}

const PROBE_USER_AGENT = 'switchyard-health-check';

/** Probes one endpoint on its own connection, so a saturated traffic pool cannot fail the check. */
class Prober {
  readonly settingsKey: string;
  readonly health: EndpointHealth;
  private readonly upstream: string;
  private readonly endpoint: EndpointRuntime;
  private readonly settings: HealthCheckSettings;
  private readonly client: Client;
  private readonly events: HealthEvents;
  private readonly random: () => number;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: AbortController | undefined;
  private stopped = false;

  constructor(upstream: UpstreamRuntime, endpoint: EndpointRuntime, settingsKey: string, events: HealthEvents, random: () => number) {
    this.upstream = upstream.name;
    this.endpoint = endpoint;
    this.health = endpoint.health;
    this.settings = upstream.def.healthCheck as HealthCheckSettings;
    this.settingsKey = settingsKey;
    this.events = events;
    this.random = random;
    this.client = new Client(endpoint.origin, {
      connect: connectOptions(upstream.def),
      // Probes speak what traffic speaks: an h2c-only (gRPC) server would refuse HTTP/1.1.
      ...protocolOptions(upstream.def),
      keepAliveTimeout: Math.max(this.settings.intervalMs * 2, 1_000),
      pipelining: 1,
    });
  }

  /**
   * The first probe comes after a random part of the interval (at most a second,
   * so a new endpoint is checked soon), and each later one after the interval
   * ±10%: gateways started together drift apart instead of probing in step.
   */
  start(): void {
    this.schedule(this.random() * Math.min(this.settings.intervalMs, 1_000));
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.probe(), delayMs);
    this.timer.unref();
  }

  private async probe(): Promise<void> {
    const abort = new AbortController();
    this.inFlight = abort;
    const timer = setTimeout(() => abort.abort(new Error(`no answer within ${this.settings.timeoutMs} ms`)), this.settings.timeoutMs);
    let ok = false;
    let error: string | undefined;
    try {
      const res = await this.client.request({
        path: this.settings.path,
        method: 'GET',
        headers: { 'user-agent': PROBE_USER_AGENT },
        // One deadline for the whole probe (headers and body): the abort timer above.
        signal: abort.signal,
      });
      await res.body.dump({ limit: 64 * 1024, signal: abort.signal });
      // As Kubernetes' httpGet probes: 200 to 399 is healthy.
      ok = res.statusCode >= 200 && res.statusCode < 400;
      if (!ok) error = `status ${res.statusCode}`;
    } catch (err) {
      const e = err as Error & { code?: string };
      error = abort.signal.aborted ? `no answer within ${this.settings.timeoutMs} ms` : (e.code ?? e.message);
    } finally {
      clearTimeout(timer);
      this.inFlight = undefined;
    }
    if (this.stopped) return;
    this.events.probed(this.upstream, this.endpoint, ok);
    const changed = this.health.recordProbe(ok, this.settings, error);
    if (changed !== undefined) this.events.healthChanged(this.upstream, this.endpoint, changed, error);
    this.schedule(this.settings.intervalMs * (0.9 + 0.2 * this.random()));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.inFlight?.abort(new Error('health checker stopped'));
    this.client.destroy().catch(() => undefined);
  }
}

/** Runs the active health checks of the live table: one prober per checked endpoint. */
export class HealthChecker {
  private readonly probers = new Map<string, Prober>();
  private readonly events: HealthEvents;
  private readonly random: () => number;

  constructor(events: HealthEvents, random: () => number = Math.random) {
    this.events = events;
    this.random = random;
  }

  /**
   * Makes the running probes match the table: starts probes for new endpoints,
   * restarts those whose settings changed, and stops those whose endpoint or
   * check left the table (an endpoint that is no longer there is never probed).
   */
  sync(upstreams: Iterable<UpstreamRuntime>): void {
    const wanted = new Set<string>();
    for (const u of upstreams) {
      const hc = u.def.healthCheck;
      if (!hc) {
        for (const e of u.endpoints) {
          const changed = e.health.resetCheck();
          if (changed !== undefined) this.events.healthChanged(u.name, e, true, 'health check removed');
        }
        continue;
      }
      const settingsKey = `${hc.path}|${hc.intervalMs}|${hc.timeoutMs}|${hc.healthyThreshold}|${hc.unhealthyThreshold}|${connectKey(u)}`;
      for (const e of u.endpoints) {
        const key = `${u.name}\u0000${e.origin}`;
        wanted.add(key);
        const running = this.probers.get(key);
        if (running && running.settingsKey === settingsKey && running.health === e.health) continue;
        running?.stop();
        const prober = new Prober(u, e, settingsKey, this.events, this.random);
        this.probers.set(key, prober);
        prober.start();
      }
    }
    for (const [key, prober] of this.probers) {
      if (wanted.has(key)) continue;
      prober.stop();
      this.probers.delete(key);
    }
  }

  /** Endpoints being probed now, as `upstream origin` pairs (for tests and the admin API). */
  get probing(): string[] {
    return [...this.probers.keys()].map((k) => k.replace('\u0000', ' '));
  }

  stop(): void {
    for (const p of this.probers.values()) p.stop();
    this.probers.clear();
  }
}

/**
 * The connection settings a probe shares with traffic (connect timeout, CA,
 * server name, verification), hashed whole: any change, such as a rotated CA
 * of the same size, restarts the probe with the new settings.
 */
function connectKey(u: UpstreamRuntime): string {
  return createHash('sha256').update(JSON.stringify([connectOptions(u.def), u.def.protocol])).digest('hex');
}
