import { defineConfig } from 'vitest/config';

// Tiers (see docs/testing.md): unit needs nothing; dataplane runs real HTTP
// servers on 127.0.0.1 and real tools (promtool, redis-server); controlplane runs
// a real kube-apiserver built by hack/. No tier skips: a missing tool fails the run.
export default defineConfig({
  test: {
    globalSetup: ['test/support/global-setup.ts'],
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { extends: true, test: { name: 'dataplane', include: ['test/dataplane/**/*.test.ts'], testTimeout: 30_000, hookTimeout: 30_000 } },
      {
        extends: true,
        test: { name: 'controlplane', include: ['test/controlplane/**/*.test.ts', 'test/e2e/**/*.test.ts'], testTimeout: 120_000, hookTimeout: 300_000, fileParallelism: false },
      },
    ],
  },
});
