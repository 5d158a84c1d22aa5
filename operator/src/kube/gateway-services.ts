/**
 * The Services of Gateways that have addresses of their own: compile says
 * which should exist (`gatewayServices`), and this keeps the cluster so, while
 * this replica leads. Each is applied server-side when what Switchyard sets
 * differs from what the cluster holds, and those with Switchyard's label that
 * no Gateway wants any more are deleted. The API is behind `ServiceClient`, so
 * the logic is tested without an API server.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import { controllerLabel, GATEWAY_SERVICE_LABEL, type DesiredService } from '../compile/index.ts';
import type { Logger } from '../log.ts';
import type { KubeObject } from '../store/convert.ts';

/** What keeping Services needs from the API server. */
export interface ServiceClient {
  apply(service: DesiredService): Promise<void>;
  delete(namespace: string, name: string): Promise<void>;
}

type ServiceSpec = DesiredService['spec'];

/** Whether the cluster's Service says what Switchyard sets (other fields, defaulted or someone else's, do not count). */
export function serviceUpToDate(want: DesiredService, have: KubeObject | undefined): boolean {
  if (have === undefined) return false;
  const spec = (have.spec ?? {}) as Partial<ServiceSpec> & { ports?: { name?: string; port?: number; targetPort?: number | string; protocol?: string }[] };
  const meta = (have.metadata ?? {}) as { labels?: Record<string, string>; annotations?: Record<string, string> };
  const subset = (a: Record<string, string>, b: Record<string, string> | undefined): boolean => Object.entries(a).every(([k, v]) => b?.[k] === v);
  const ports = (spec.ports ?? []).map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: p.protocol ?? 'TCP' }));
  return (
    subset(want.labels, meta.labels) &&
    subset(want.annotations, meta.annotations) &&
    spec.type === want.spec.type &&
    isDeepStrictEqual(spec.selector ?? {}, want.spec.selector) &&
    isDeepStrictEqual(ports, want.spec.ports) &&
    spec.externalTrafficPolicy === want.spec.externalTrafficPolicy &&
    spec.loadBalancerClass === want.spec.loadBalancerClass &&
    isDeepStrictEqual(spec.loadBalancerSourceRanges, want.spec.loadBalancerSourceRanges)
  );
}

/** Options of GatewayServices. */
export interface GatewayServicesOptions {
  log: Logger;
  controllerName: string;
  /** Pause before retrying after an API error. */
  retryMs?: number;
}

/** Keeps Gateways' own Services as compile wants them, while enabled. */
export class GatewayServices {
  /** Applies and deletes done, for tests and logs. */
  readonly counters = { applied: 0, deleted: 0, failed: 0 };
  private readonly client: ServiceClient;
  private readonly options: GatewayServicesOptions;
  private enabled = false;
  private latest: { desired: readonly DesiredService[]; existing: readonly KubeObject[] } | undefined;
  private running = false;
  private retry: NodeJS.Timeout | undefined;
  private idle: (() => void)[] = [];

  constructor(client: ServiceClient, options: GatewayServicesOptions) {
    this.client = client;
    this.options = options;
  }

  /** Turns keeping on (leader) or off. */
  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    if (!enabled) clearTimeout(this.retry);
    this.kick();
  }

  /** What should exist, and the Services the cluster holds in their namespace now. */
  sync(desired: readonly DesiredService[], existing: readonly KubeObject[]): void {
    this.latest = { desired, existing };
    this.kick();
  }

  /** Resolves once the last sync is done (or keeping is off). */
  drained(): Promise<void> {
    if (!this.running && (this.latest === undefined || !this.enabled)) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Stops keeping and retrying. */
  stop(): void {
    this.setEnabled(false);
  }

  private kick(): void {
    if (this.running) return;
    const work = this.latest;
    if (!this.enabled || work === undefined) {
      for (const r of this.idle.splice(0)) r();
      return;
    }
    this.latest = undefined;
    this.running = true;
    this.reconcile(work.desired, work.existing).then(
      () => {
        this.running = false;
        this.kick();
      },
      (err: unknown) => {
        this.running = false;
        this.counters.failed++;
        this.options.log.warn({ event: 'gateway_service_failed', error: (err as Error).message }, "cannot update a Gateway's Service; will retry");
        // Retry the same work unless newer work came meanwhile.
        this.latest ??= work;
        clearTimeout(this.retry);
        this.retry = setTimeout(() => this.kick(), this.options.retryMs ?? 1000 + Math.random() * 1000);
      },
    );
  }

  private async reconcile(desired: readonly DesiredService[], existing: readonly KubeObject[]): Promise<void> {
    const byName = new Map(existing.map((o) => [`${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`, o]));
    for (const want of desired) {
      if (serviceUpToDate(want, byName.get(`${want.namespace}/${want.name}`))) continue;
      await this.client.apply(want);
      this.counters.applied++;
      this.options.log.info({ event: 'gateway_service_applied', service: `${want.namespace}/${want.name}`, gateway: want.annotations['switchyard.dev/gateway'] }, "applied a Gateway's Service");
    }
    const wanted = new Set(desired.map((d) => `${d.namespace}/${d.name}`));
    const mine = controllerLabel(this.options.controllerName);
    for (const o of existing) {
      const key = `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
      if (o.metadata?.labels?.[GATEWAY_SERVICE_LABEL] !== mine || wanted.has(key)) continue;
      await this.client.delete(o.metadata?.namespace ?? '', o.metadata?.name ?? '');
      this.counters.deleted++;
      this.options.log.info({ event: 'gateway_service_deleted', service: key }, 'deleted the Service of a Gateway that is gone');
    }
  }
}

/** The ServiceClient of a real API server: server-side apply, so fields others set on the Service stay theirs. */
export class KubeServiceClient implements ServiceClient {
  private readonly core: CoreV1Api;

  constructor(kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  async apply(s: DesiredService): Promise<void> {
    const body = { apiVersion: 'v1', kind: 'Service', metadata: { name: s.name, namespace: s.namespace, labels: s.labels, annotations: s.annotations }, spec: s.spec };
    await this.core.patchNamespacedService({ name: s.name, namespace: s.namespace, body, fieldManager: 'switchyard-operator', force: true }, setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply));
  }

  async delete(namespace: string, name: string): Promise<void> {
    try {
      await this.core.deleteNamespacedService({ name, namespace });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
    }
  }
}
