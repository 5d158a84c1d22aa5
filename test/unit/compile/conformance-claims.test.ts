/**
 * The GatewayClass claims what the conformance suite saw pass: the features in
 * SUPPORTED_FEATURES are those of the committed report (docs/conformance/report.yaml,
 * written by hack/conformance.sh), every part of which succeeded, and the docs list them.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SUPPORTED_FEATURES } from '../../../operator/src/compile/gateway-api/gateway-classes.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const CORE = ['Gateway', 'HTTPRoute', 'ReferenceGrant'];

interface Part {
  result: string;
  statistics: { Passed: number; Failed: number; Skipped: number };
  supportedFeatures?: string[];
}
interface Report {
  gatewayAPIVersion: string;
  profiles: { name: string; core: Part; extended?: Part }[];
}

const report = parse(readFileSync(path.join(ROOT, 'docs/conformance/report.yaml'), 'utf8')) as Report;
const profile = report.profiles.find((p) => p.name === 'GATEWAY-HTTP');

describe('the conformance claims', () => {
  it('come from a report of the pinned release where every core test and every claimed feature passed', () => {
    expect(report.gatewayAPIVersion).toBe(readFileSync(path.join(ROOT, 'crds/gateway-api/VERSION'), 'utf8').trim());
    expect(profile, 'a GATEWAY-HTTP profile in the report').toBeDefined();
    expect(profile?.core).toMatchObject({ result: 'success', statistics: { Failed: 0 } });
    expect(profile?.core.statistics.Passed).toBeGreaterThan(0);
    expect(profile?.extended).toMatchObject({ result: 'success', statistics: { Failed: 0 } });
  });

  it('are exactly the features the report tested: the GatewayClass claims no feature the suite has not seen pass', () => {
    const extended = SUPPORTED_FEATURES.filter((f) => !CORE.includes(f));
    expect(SUPPORTED_FEATURES).toEqual(expect.arrayContaining(CORE));
    expect([...(profile?.extended?.supportedFeatures ?? [])].sort()).toEqual([...extended].sort());
  });

  it('are listed in docs/conformance/README.md', () => {
    const doc = readFileSync(path.join(ROOT, 'docs/conformance/README.md'), 'utf8');
    const claimed = doc.slice(doc.indexOf('## Result'), doc.indexOf('## Running it'));
    for (const f of SUPPORTED_FEATURES.filter((x) => !CORE.includes(x))) expect(claimed, f).toContain(`\`${f}\``);
  });
});
