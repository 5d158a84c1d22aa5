import { defineConfig } from 'vitest/config';

// Tiers (see docs/testing.md): unit needs nothing; dataplane runs real HTTP
// servers on 127.0.0.1 and real tools (promtool, redis-server); controlplane runs
// a real kube-apiserver built by hack/; node runs the chart on a real single-node
// cluster (hack/cluster.sh). The global setup prepares each tier and fails the run
// when it cannot: no tier skips.
const SETUP = 'test/support/global-setup.ts';

export default defineConfig({
  test: {
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'], globalSetup: [SETUP] } },
      { extends: true, test: { name: 'dataplane', include: ['test/dataplane/**/*.test.ts'], globalSetup: [SETUP], testTimeout: 30_000, hookTimeout: 30_000 } },
      {
        extends: true,
        test: {
          name: 'controlplane',
          include: ['test/controlplane/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          globalSetup: [SETUP],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'node',
          include: ['test/node/**/*.test.ts'],
          globalSetup: [SETUP],
          testTimeout: 300_000,
          hookTimeout: 900_000,
          fileParallelism: false,
          // After the other tiers: its load tests and rolling restarts share two cores with nothing else.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
