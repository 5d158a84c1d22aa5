/**
 * The Helm chart's files that need no Helm: the CRD copies, versions, the
 * values reference in docs/install.md and the dashboard's metric names. The
 * chart is rendered and installed for real in test/controlplane/packaging/.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { replaceReference, valuesReference, type Schema } from './values-doc.ts';
import { updatingGolden } from '../../support/golden.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const CHART = path.join(ROOT, 'charts', 'switchyard');
const read = (...parts: string[]): string => readFileSync(path.join(ROOT, ...parts), 'utf8');

describe('chart CRDs', () => {
  it('are identical copies of crds/ (run `npm run gen:crds`, which writes both)', () => {
    const top = readdirSync(path.join(ROOT, 'crds')).filter((f) => f.endsWith('.yaml')).sort();
    const chart = readdirSync(path.join(CHART, 'crds')).filter((f) => f.endsWith('.yaml')).sort();
    expect(chart).toEqual(top);
    for (const file of top) expect(read('charts/switchyard/crds', file), file).toBe(read('crds', file));
  });
});

describe('chart metadata', () => {
  it('deploys the version in package.json', () => {
    const chart = parse(read('charts/switchyard/Chart.yaml')) as { appVersion: string; version: string };
    const pkg = JSON.parse(read('package.json')) as { version: string };
    expect(chart.appVersion).toBe(pkg.version);
  });
});

describe('docs/install.md', () => {
  it('has the values reference generated from values.schema.json and values.yaml', () => {
    const schema = JSON.parse(read('charts/switchyard/values.schema.json')) as Schema;
    const values = parse(read('charts/switchyard/values.yaml')) as unknown;
    const doc = read('docs/install.md');
    const expected = replaceReference(doc, valuesReference(schema, values));
    if (updatingGolden() && expected !== doc) writeFileSync(path.join(ROOT, 'docs/install.md'), expected);
    else expect(doc, 'docs/install.md is out of date: run `npm run gen:helm-golden`').toBe(expected);
  });

  it('describes every value: no key of values.yaml lacks a schema entry', () => {
    const schema = JSON.parse(read('charts/switchyard/values.schema.json')) as Schema;
    const values = parse(read('charts/switchyard/values.yaml')) as Record<string, unknown>;
    const missing: string[] = [];
    const walk = (s: Schema, v: unknown, at: string): void => {
      if (v === null || typeof v !== 'object' || Array.isArray(v) || !s.properties) return;
      for (const [key, child] of Object.entries(v)) {
        const sub = s.properties[key];
        if (!sub) missing.push(`${at}${key}`);
        else if (sub.properties) walk(sub, child, `${at}${key}.`);
      }
    };
    walk(schema, values, '');
    expect(missing).toEqual([]);
  });
});

describe('Grafana dashboard', () => {
  interface Panel {
    title: string;
    type: string;
    targets?: { expr: string }[];
  }
  const dashboard = JSON.parse(read('charts/switchyard/files/dashboard.json')) as { uid: string; panels: Panel[] };
  const sources = ['dataplane/src/observability/metrics.ts', 'operator/src/metrics.ts'].map((f) => read(f)).join('\n');
  const exported = new Set([...sources.matchAll(/name: '(switchyard_[a-z_]+)'/g)].map((m) => m[1] as string));

  it('queries only metrics that the data plane and the operator export', () => {
    const unknown: string[] = [];
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        for (const [name] of target.expr.matchAll(/switchyard_[a-z_]+/g)) {
          const base = name.replace(/_(bucket|sum|count)$/, '');
          if (!exported.has(base)) unknown.push(`${panel.title}: ${name}`);
        }
      }
    }
    expect(unknown).toEqual([]);
  });

  it('covers traffic, latency, upstream health, breakers and propagation', () => {
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join('\n');
    for (const metric of [
      'switchyard_requests_total',
      'switchyard_request_duration_seconds_bucket',
      'switchyard_upstream_endpoint_healthy',
      'switchyard_circuit_breaker_state',
      'switchyard_table_info',
      'switchyard_operator_table_info',
      'switchyard_operator_acks_total',
      'switchyard_table_loaded_timestamp_seconds',
    ]) {
      expect(exprs).toContain(metric);
    }
    expect(dashboard.panels.filter((p) => p.type !== 'row').every((p) => (p.targets ?? []).length > 0)).toBe(true);
  });
});
