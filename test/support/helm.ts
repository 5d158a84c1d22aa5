/**
 * Helm for tests: the binary hack/helm.sh builds (from the Go module, cached), run
 * with its own config, cache and data directories so that nothing of the user's
 * Helm setup leaks in or out. Also a small multi-document YAML reader for what
 * `helm template` prints.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const CHART = path.join(ROOT, 'charts', 'switchyard');

/** The result of one helm run. */
export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program; never rejects, the caller checks the code. */
export function runTool(file: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {}): Promise<HelmResult> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      { env: { ...process.env, ...options.env }, cwd: options.cwd ?? ROOT, maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 600_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        resolve({ code, stdout, stderr: stderr || (error && !stderr ? error.message : '') });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

let helmPath: Promise<string> | undefined;

/** The helm binary's path; builds it on first use (minutes, once per machine). */
export function helmBinary(): Promise<string> {
  helmPath ??= runTool('bash', [path.join(ROOT, 'hack', 'helm.sh'), 'path']).then((r) => {
    if (r.code !== 0) {
      const goMissing = r.stderr.includes('Go is not installed');
      throw new Error(`${goMissing ? 'helm: Go is needed to build Helm (see hack/helm/go.mod for the version).' : 'helm: `hack/helm.sh path` failed.'}\n${r.stderr}`);
    }
    return r.stdout.trim();
  });
  return helmPath;
}

const home = mkdtempSync(path.join(tmpdir(), 'switchyard-helm-home-'));
process.on('exit', () => rmSync(home, { recursive: true, force: true }));

/** Runs helm with isolated state directories. */
export async function helm(args: readonly string[], options: { kubeconfig?: string; input?: string } = {}): Promise<HelmResult> {
  const env: NodeJS.ProcessEnv = {
    HELM_CONFIG_HOME: path.join(home, 'config'),
    HELM_CACHE_HOME: path.join(home, 'cache'),
    HELM_DATA_HOME: path.join(home, 'data'),
    KUBECONFIG: options.kubeconfig ?? path.join(home, 'no-kubeconfig'),
  };
  return runTool(await helmBinary(), args, { env, input: options.input });
}

/** Like helm(), but rejects with helm's stderr unless it exits 0. */
export async function helmOk(args: readonly string[], options: { kubeconfig?: string; input?: string } = {}): Promise<string> {
  const r = await helm(args, options);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r.stdout;
}

/** A Kubernetes object as rendered. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

/** Parses a multi-document YAML stream, dropping empty documents. */
export function parseObjects(text: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`invalid YAML from helm: ${doc.errors[0]?.message ?? ''}`);
    const value = doc.toJS() as K8sObject | null;
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

/** Finds one object by kind and name suffix; throws if it is not there. */
export function find(objects: readonly K8sObject[], kind: string, nameSuffix: string): K8sObject {
  const hit = objects.find((o) => o.kind === kind && o.metadata.name.endsWith(nameSuffix));
  if (!hit) throw new Error(`no ${kind} named *${nameSuffix} among: ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return hit;
}
