import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Some tests spawn `bin/ebb.js`, which runs the compiled dist/.
    globalSetup: ['test/support/build.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Test files run in one process per core (forks), one file after another, sharing the modules
    // each process has imported (isolate: false): importing ebb, DuckDB and vitest again for every
    // file cost about a sixth of the suite's CPU time. Most of their time the files wait for child
    // processes, servers and timers rather than compute: one process per core keeps a small machine
    // busy, where vitest's default (cores - 1) would run one file at a time on two cores. Files
    // share nothing: temporary directories, ports chosen by the system, a PostgreSQL schema and
    // Redis keys of their own, and each puts back an environment variable it sets. `--maxWorkers`
    // overrides the count.
    pool: 'forks',
    isolate: false,
    maxWorkers: Math.max(2, availableParallelism()),
  },
});
