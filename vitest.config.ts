import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Some tests spawn `bin/ebb.js`, which runs the compiled dist/.
    globalSetup: ['test/support/build.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Test files run in forks, one file after another in each, sharing the modules that a fork has
    // imported (isolate: false): importing ebb, DuckDB and vitest again for every file cost about a
    // sixth of the suite's CPU time. Most of their time the files wait for child processes, servers
    // and timers rather than compute, so there is one fork more than there are cores: on two cores,
    // vitest's default (cores - 1) would run one file at a time. Files share no data: temporary
    // directories, ports chosen by the system, a PostgreSQL schema and Redis keys of their own. Each
    // puts back an environment variable it sets, and a test's secret is a value that no message of
    // another file holds (ebb masks every secret it has read in a process). `--maxWorkers` overrides
    // the count.
    pool: 'forks',
    isolate: false,
    maxWorkers: availableParallelism() + 1,
  },
});
