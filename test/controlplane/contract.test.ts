/**
 * One contract, against a real API server: what the operator reports in a
 * GatewayRoute's status is what the data plane does with requests. Conflicts
 * are decided by the data plane's own matcher, so a route that would never
 * serve is never Accepted or Programmed; and the integration guide's canary
 * (examples/kubernetes/30-canary.yaml) routes as written.
 */
import { readFileSync } from 'node:fs';
import { SignJWT } from 'jose';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import type { Operator } from '../../operator/src/operator.ts';
import { startControlPlane, type ControlPlane } from '../support/control-plane.ts';
import { eventually, getObject, kubeFor, waitCondition, type Kube, installCrds } from '../support/kube.ts';
import { startDataplane, startOperator, type TestDataplane } from '../support/operator.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

const NS = 'shop';
const SECRET = 'contract-test-secret-with-at-least-64-bytes-for-any-hmac-algorithm-0123456789';

async function landedOn(url: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await request(url, { headers });
  await res.body.dump();
  if (res.statusCode !== 200) return String(res.statusCode);
  return String(res.headers['x-upstream']);
}

describe('one contract: status says what the data plane does', () => {
  let cp: ControlPlane;
  let kube: Kube;
  let op: Operator;
  let dp: TestDataplane;
  let v1: TestUpstream;
  let v2: TestUpstream;

  beforeAll(async () => {
    cp = await startControlPlane();
    kube = kubeFor(cp);
    await installCrds(kube, NS);
    v1 = await startUpstream(echo('v1'));
    v2 = await startUpstream(echo('v2'));
    op = await startOperator(kube);
    dp = await startDataplane([`http://127.0.0.1:${op.port}`], 'dp-contract', {
      bootstrap: `auth: { jwt: { secret: "\${JWT_SECRET}", algorithm: HS256 } }\n`,
      env: { JWT_SECRET: SECRET },
    });
    await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: v1, namespace: ${NS} }
spec: { static: { endpoints: ["${v1.url}"] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: v2, namespace: ${NS} }
spec: { static: { endpoints: ["${v2.url}"] } }
`);
  });

  afterAll(async () => {
    await dp?.stop();
    await op?.stop();
    await v1?.close();
    await v2?.close();
    await cp?.stop();
  });

  const route = (name: string, spec: string): string => `apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: ${name}, namespace: ${NS} }
spec: ${spec}
`;

  for (const c of [
    { shape: 'Prefix /pfx and /pfx/', older: ['pfx', '{ path: { type: Prefix, value: /pfx }, upstream: v1 }'], newer: ['pfx-slash', '{ path: { type: Prefix, value: /pfx/ }, upstream: v2 }'], request: '/pfx/x', claim: 'any method /pfx/' },
    {
      shape: 'templates that differ only in parameter names',
      older: ['by-id', '{ path: { type: Template, value: "/things/{id}" }, methods: [GET], upstream: v1 }'],
      newer: ['by-name', '{ path: { type: Template, value: "/things/{name}" }, methods: [GET], upstream: v2 }'],
      request: '/things/7',
      claim: 'GET /things/{name}',
    },
  ] as const) {
    it(`${c.shape}: the newer route is Conflicted naming the winner, never Programmed, and serves once the winner is gone`, async () => {
      const [olderName, olderSpec] = c.older;
      const [newerName, newerSpec] = c.newer;
      await kube.apply(route(olderName, olderSpec));
      await waitCondition(kube, 'gatewayroutes', NS, olderName, 'Programmed', 'True');
      await kube.apply(route(newerName, newerSpec));
      const conflicted = await waitCondition(kube, 'gatewayroutes', NS, newerName, 'Accepted', 'False', 'Conflicted');
      expect(conflicted.message).toContain(`conflicts with the older GatewayRoute "${NS}/${olderName}" on ${c.claim}`);
      const programmed = await waitCondition(kube, 'gatewayroutes', NS, newerName, 'Programmed', 'False', 'NotAccepted');
      expect(programmed.status).toBe('False');
      // What the status says is what the data plane does: every request goes to the older route.
      for (let i = 0; i < 5; i++) expect(await landedOn(`${dp.url}${c.request}`)).toBe('v1');
      expect(await kube.kubectl(['get', 'gwr', newerName, '-n', NS])).toMatch(new RegExp(`${newerName}\\s+\\S+\\s+v2\\s+False\\s+False`));

      // With the winner gone, the newer route is accepted, programmed, and serves.
      await kube.kubectl(['delete', 'gwr', olderName, '-n', NS]);
      await waitCondition(kube, 'gatewayroutes', NS, newerName, 'Accepted', 'True', 'Accepted');
      await waitCondition(kube, 'gatewayroutes', NS, newerName, 'Programmed', 'True');
      await eventually(async () => ((await landedOn(`${dp.url}${c.request}`)) === 'v2' ? true : undefined), 30_000, `${c.request} served by the newer route`);
      await kube.kubectl(['delete', 'gwr', newerName, '-n', NS]);
    });
  }

  it('a route whose header condition the matcher refuses is Invalid, with the matcher\'s reason', async () => {
    await kube.apply(route('twice', '{ path: { type: Prefix, value: /twice }, headers: [{ name: x-a, value: "1" }, { name: X-A, type: Present }], upstream: v1 }'));
    const invalid = await waitCondition(kube, 'gatewayroutes', NS, 'twice', 'Accepted', 'False', 'Invalid');
    expect(invalid.message).toBe('header condition "X-A" is listed twice; a header can be matched once per route');
    expect((await getObject(kube, 'gatewayroutes', NS, 'twice')).status?.conditions?.find((x) => x.type === 'Programmed')?.status).toBe('False');
    await kube.kubectl(['delete', 'gwr', 'twice', '-n', NS]);
  });

  it("routes the seed's canary as examples/kubernetes/30-canary.yaml writes it: canary: true to v2, the rest 90/10", async () => {
    // The example's GatewayRoutes as written; its Upstreams name Services, so here they name the two test servers instead.
    const docs = parseAllDocuments(readFileSync('examples/kubernetes/30-canary.yaml', 'utf8')).map((d) => d.toJS() as { kind: string; metadata: { name: string }; spec: Record<string, unknown> });
    const routes = docs.filter((d) => d.kind === 'GatewayRoute');
    expect(routes.map((r) => r.metadata.name).sort()).toEqual(['orders', 'orders-canary']);
    const upstreams = docs.filter((d) => d.kind === 'Upstream').map((u) => ({ ...u, spec: { static: { endpoints: [u.metadata.name === 'orders-stable' ? v1.url : v2.url] } } }));
    await kube.apply([...upstreams, ...routes].map((d) => stringify(d)).join('---\n'));
    for (const r of routes) await waitCondition(kube, 'gatewayroutes', NS, r.metadata.name, 'Programmed', 'True');

    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ sub: 'tester', roles: ['user'], iat: now, exp: now + 600 }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
    const auth = { authorization: `Bearer ${token}` };
    const count = async (headers: Record<string, string>, n: number): Promise<Record<string, number>> => {
      const counts: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        const where = await landedOn(`${dp.url}/api/v1/orders/${i}`, { ...auth, ...headers });
        counts[where] = (counts[where] ?? 0) + 1;
      }
      return counts;
    };
    expect(await count({ canary: 'true' }, 30)).toEqual({ v2: 30 });
    expect(await count({}, 100)).toEqual({ v1: 90, v2: 10 });
    // The routes keep their own policy: no token, no entry, whichever route matches.
    expect(await landedOn(`${dp.url}/api/v1/orders/1`, { canary: 'true' })).toBe('401');
  });
});
