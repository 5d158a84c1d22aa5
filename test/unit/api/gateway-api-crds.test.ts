/**
 * The vendored Gateway API CRDs are one standard-channel release, the one the
 * operator says it implements, and the kinds compile reads are among them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { GATEWAY_API_BUNDLE_VERSION, GATEWAY_API_GROUP, GATEWAY_API_VERSION } from '../../../operator/src/api/gateway-api.ts';

const DIR = 'crds/gateway-api';
const docs = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) => parseAllDocuments(readFileSync(`${DIR}/${f}`, 'utf8')).map((d) => ({ file: f, obj: d.toJS() as { kind: string; metadata: { name: string; annotations?: Record<string, string> }; spec?: { group?: string; names?: { kind: string }; versions?: { name: string; served: boolean; storage: boolean }[] } } })));

describe('crds/gateway-api', () => {
  it('holds one release, the one named in VERSION and in the operator', () => {
    expect(readFileSync(`${DIR}/VERSION`, 'utf8').trim()).toBe(GATEWAY_API_BUNDLE_VERSION);
    for (const { file, obj } of docs) {
      expect({ file, version: obj.metadata.annotations?.['gateway.networking.k8s.io/bundle-version'], channel: obj.metadata.annotations?.['gateway.networking.k8s.io/channel'] }).toEqual({ file, version: GATEWAY_API_BUNDLE_VERSION, channel: 'standard' });
    }
  });

  it('serves and stores the version compile reads for each kind Switchyard implements', () => {
    for (const kind of ['GatewayClass', 'Gateway', 'HTTPRoute']) {
      const crd = docs.find((d) => d.obj.kind === 'CustomResourceDefinition' && d.obj.spec?.names?.kind === kind)?.obj;
      expect(crd?.spec?.group).toBe(GATEWAY_API_GROUP);
      expect(crd?.spec?.versions?.find((v) => v.name === GATEWAY_API_VERSION)).toMatchObject({ served: true, storage: true });
    }
    const grant = docs.find((d) => d.obj.spec?.names?.kind === 'ReferenceGrant')?.obj;
    expect(grant?.spec?.versions?.some((v) => v.served)).toBe(true);
  });
});
