/**
 * The operator and data planes in this process, for control-plane suites: an
 * Operator against the test API server, and data planes (real Gateways with
 * real listeners on 127.0.0.1) subscribed to it.
 */
import { parseConfig } from '../../dataplane/src/config/load.ts';
import { silentLogger } from '../../dataplane/src/observability/logger.ts';
import { Gateway } from '../../dataplane/src/server/gateway.ts';
import { OperatorSource } from '../../dataplane/src/table/operator-source.ts';
import { Operator, type OperatorOptions } from '../../operator/src/operator.ts';
import type { Kube } from './kube.ts';

/** The bearer token the test operators and data planes share. */
export const OPERATOR_TOKEN = 'test-token-0123456789';

/** A data plane subscribed to an operator. */
export interface TestDataplane {
  gw: Gateway;
  source: OperatorSource;
  url: string;
  stop(): Promise<void>;
}

/** Starts an operator watching every namespace, with short debounce delays; `extra` overrides options. */
export async function startOperator(kube: Kube, identity = 'operator-test', extra: Partial<OperatorOptions> = {}): Promise<Operator> {
  const op = new Operator({
    kubeconfig: kube.kc,
    namespaces: [],
    token: OPERATOR_TOKEN,
    listen: { host: '127.0.0.1', port: 0 },
    identity,
    lease: undefined,
    log: silentLogger(),
    debounce: { delayMs: 50, maxDelayMs: 500 },
    heartbeatMs: 1000,
    ...extra,
  });
  await op.start();
  return op;
}

/** Starts a data plane on free ports with `bootstrap` (gateway.yaml text without routes) and subscribes it to the operators. */
export async function startDataplane(operatorUrls: string[], id: string, options: { stateDir?: string; bootstrap?: string; env?: NodeJS.ProcessEnv } = {}): Promise<TestDataplane> {
  // https_port 0 too: the TLS listener starts when a table brings certificates (Gateway API HTTPS listeners).
  const { config } = parseConfig(`server: { http_port: 0, https_port: 0, admin_port: 0, metrics_port: 0, bind_address: 127.0.0.1 }\n${options.bootstrap ?? ''}`, 'bootstrap.yaml', options.env ?? {});
  const gw = await Gateway.start({ config, log: silentLogger(), tableSource: 'external' });
  const source = new OperatorSource({ urls: operatorUrls, token: OPERATOR_TOKEN, id, holder: gw.holder, log: silentLogger(), stateDir: options.stateDir, backoff: { initialMs: 50, maxMs: 500 }, explain: (request, namespace) => gw.explainRelayed(request, namespace) });
  source.start();
  return {
    gw,
    source,
    url: `http://127.0.0.1:${gw.ports.http}`,
    stop: async () => {
      await source.stop();
      await gw.stop(0);
    },
  };
}
