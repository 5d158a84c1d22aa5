/**
 * Manifests shared by the unit and control-plane suites: the examples, the
 * valid edge cases, and the invalid fixtures with the field and messages each
 * must be rejected with, in full (from their `# field:`, `# message:` and
 * `# api:` header lines).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

export const EXAMPLES_DIR = 'examples/kubernetes';
export const VALID_DIR = 'test/fixtures/valid';
export const INVALID_DIR = 'test/fixtures/invalid';

/** A Kubernetes object as read from a manifest. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
  [key: string]: unknown;
}

/** An invalid manifest and how the API server and the zod schema must reject it. */
export interface InvalidFixture {
  file: string;
  path: string;
  why: string;
  field: string;
  /** The message of the rule that refuses it: a CEL rule's own, which zod gives too; else the API server's. */
  message: string;
  /** What the API server says about `field`, whole: the rule's message after the value, as `kubectl apply` shows it. */
  api: string;
  object: Manifest;
}

/**
 * Every document of a YAML file, read as YAML 1.1 because that is what kubectl
 * reads (an unquoted `on:` key is `true:` there, for example).
 */
export function loadManifests(path: string): Manifest[] {
  return parseAllDocuments(readFileSync(path, 'utf8'), { version: '1.1' })
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors.map((e) => e.message).join('; ')}`);
      return doc.toJS() as Manifest | null;
    })
    .filter((m): m is Manifest => m !== null);
}

/** The YAML files of a directory, sorted as `kubectl apply -f dir` applies them. */
export function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(dir, f));
}

/** Every invalid fixture with its expectations. */
export function invalidFixtures(): InvalidFixture[] {
  return yamlFiles(INVALID_DIR).map((path) => {
    const text = readFileSync(path, 'utf8');
    const header = (key: string): string => {
      const m = new RegExp(`^# ${key}: (.*)$`, 'm').exec(text);
      if (m === null) throw new Error(`${path} has no "# ${key}:" line`);
      return (m[1] as string).trim();
    };
    const objects = loadManifests(path);
    if (objects.length !== 1) throw new Error(`${path} must hold exactly one object`);
    return { file: path.slice(INVALID_DIR.length + 1), path, why: header('Rejected'), field: header('field'), message: header('message'), api: header('api'), object: objects[0] as Manifest };
  });
}
