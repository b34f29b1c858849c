import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Some tests spawn `bin/ebb.js`, which runs the compiled dist/.
    globalSetup: ['test/support/build.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Each test file runs in a process of its own (forks), and most of their time they wait for
    // child processes, servers and timers rather than compute: one file per core keeps a small
    // machine busy, where vitest's default (cores - 1) would run one file at a time on two cores.
    // Files share nothing: temporary directories, ports chosen by the system, a PostgreSQL schema
    // and Redis keys of their own. `--maxWorkers` overrides it.
    pool: 'forks',
    maxWorkers: Math.max(2, availableParallelism()),
  },
});
