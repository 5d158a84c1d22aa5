/**
 * examples/docker-compose.yml without Docker: the targets it builds exist, the
 * gateway config it carries is valid for the data plane, and every address in
 * that config names a service of the same file.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { compileConfig } from '../../../dataplane/src/config/compile.ts';
import { parseConfig } from '../../../dataplane/src/config/load.ts';
import { parseDockerfile } from '../../support/dockerfile.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');

interface Service {
  build?: { context: string; target: string };
  image?: string;
  command?: string[];
  ports?: string[];
  environment?: string[];
}
const compose = parse(readFileSync(path.join(ROOT, 'examples/docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service>; configs: Record<string, { content: string }> };

describe('examples/docker-compose.yml', () => {
  it('builds only targets the Dockerfile has', () => {
    const stages = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')).stages.map((s) => s.name);
    const builds = Object.values(compose.services).flatMap((s) => (s.build ? [s.build] : []));
    expect(builds.length).toBeGreaterThan(0);
    for (const b of builds) {
      expect(path.resolve(ROOT, 'examples', b.context)).toBe(ROOT);
      expect(stages).toContain(b.target);
    }
  });

  it('carries a gateway config the data plane accepts, pointing at its own services', () => {
    // `$$` is Compose's escape for a literal `$`.
    const text = (compose.configs.gateway?.content ?? '').replaceAll('$$', '$');
    const loaded = parseConfig(text, 'gateway.yaml', { JWT_SECRET: 'compose-test-secret-of-at-least-32-bytes' });
    const { table } = compileConfig(loaded.config, 'gateway.yaml');
    expect(table.routes.length).toBe(9);
    const hosts = [...Object.values(loaded.config.upstreams).flatMap((u) => u.discovery.endpoints), loaded.config.middleware.rate_limiting?.storage.url ?? ''].map((u) => new URL(u).hostname);
    for (const host of hosts) expect(Object.keys(compose.services)).toContain(host);
  });

  it('gives the gateway and the auth service the same JWT secret, and keeps admin on this machine', () => {
    const secret = (s: string): string | undefined => compose.services[s]?.environment?.find((e) => e.startsWith('JWT_SECRET='));
    expect(secret('api-gateway')).toBeDefined();
    expect(secret('api-gateway')).toBe(secret('auth-service'));
    expect(compose.services['api-gateway']?.ports).toContain('127.0.0.1:8081:8081');
  });
});
