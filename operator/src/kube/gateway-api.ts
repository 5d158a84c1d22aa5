/**
 * Whether the cluster serves the Gateway API, and the informers on its kinds:
 * the operator watches GatewayClasses, Gateways, HTTPRoutes and ReferenceGrants
 * (with RoutePolicies, TLS Secrets and Namespaces) only when the API server
 * serves all four in v1 (the CRDs of crds/gateway-api/ or a newer release).
 * Without them it serves GatewayRoutes alone, as it always did.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { GATEWAY_API_GROUP, GATEWAY_API_VERSION } from '../api/gateway-api.ts';
import { GATEWAY_API_KINDS, Informers, type InformerEvents } from './informers.ts';

/** The resources the operator reads, as the API server names them. */
export const GATEWAY_API_RESOURCES = ['gatewayclasses', 'gateways', 'httproutes', 'referencegrants'] as const;

/**
 * The Gateway API resources the API server does not serve in v1; empty when
 * it serves them all. Rejects when the API server cannot be asked.
 */
export async function missingGatewayApi(kc: KubeConfig): Promise<string[]> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  let served: Set<string>;
  try {
    const list = await custom.getAPIResources({ group: GATEWAY_API_GROUP, version: GATEWAY_API_VERSION });
    served = new Set(list.resources.map((r) => r.name));
  } catch (err) {
    if ((err as { code?: number }).code === 404) return [...GATEWAY_API_RESOURCES];
    throw err;
  }
  return GATEWAY_API_RESOURCES.filter((r) => !served.has(r));
}

/** What GatewayApiWatch reports. */
export interface GatewayApiWatchEvents extends InformerEvents {
  /** Checked the first time (and each time it changes): whether the API is served, and what is missing. */
  onAvailability(served: boolean, missing: readonly string[]): void;
}

/**
 * The Gateway API kinds' informers, started once the API server serves the
 * Gateway API: at once when it does, or when a later check finds the CRDs
 * installed, so that installing them needs no operator restart.
 */
export class GatewayApiWatch {
  private informers: Informers | undefined;
  private listed = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private reported: boolean | undefined;
  private readonly kc: KubeConfig;
  private readonly namespaces: readonly string[];
  private readonly events: GatewayApiWatchEvents;
  private readonly pollMs: number;
  private firstCheck: (() => void) | undefined;
  /** Resolves after the first check, and once the informers have listed when the API is served. */
  readonly ready: Promise<void>;

  constructor(kc: KubeConfig, namespaces: readonly string[], events: GatewayApiWatchEvents, pollMs = 30_000) {
    this.kc = kc;
    this.namespaces = namespaces;
    this.events = events;
    this.pollMs = pollMs;
    this.ready = new Promise((resolve) => (this.firstCheck = resolve));
  }

  /** Whether the informers have listed: only then does a snapshot hold the Gateway API. */
  get synced(): boolean {
    return this.listed;
  }

  /** Starts checking for the API (and watching once it is served). */
  start(): void {
    void this.check();
  }

  private async check(): Promise<void> {
    if (this.stopped || this.informers !== undefined) return;
    let missing: string[];
    try {
      missing = await missingGatewayApi(this.kc);
    } catch {
      // The API server is away: try again soon, as the informers do.
      this.timer = setTimeout(() => void this.check(), Math.min(this.pollMs, 2_000));
      return;
    }
    const served = missing.length === 0;
    if (this.reported !== served) {
      this.reported = served;
      this.events.onAvailability(served, missing);
    }
    if (!served) {
      this.firstCheck?.();
      this.timer = setTimeout(() => void this.check(), this.pollMs);
      return;
    }
    const informers = new Informers(this.kc, this.namespaces, this.events, GATEWAY_API_KINDS);
    this.informers = informers;
    informers.start();
    await informers.synced;
    this.listed = true;
    this.firstCheck?.();
  }

  /** Relists every Gateway API informer (a new leader does, as for the others). */
  async relist(): Promise<void> {
    if (this.informers !== undefined && this.listed) await this.informers.relist();
  }

  /** Stops checking and watching. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.firstCheck?.();
    await this.informers?.stop();
  }
}
