/** `ebb serve`: the Sync Manager (web page, REST API, /metrics) and, on DuckDB, the scheduler, in one process. */
import type { Command } from 'commander';
import { action, common, type CommonOptions } from './common.ts';
import { loadProject } from '../config/load.ts';
import { createServer, defaultPort } from '../server/server.ts';
import { apiBase } from '../server/http.ts';
import { ExitCode, UsageError } from '../errors.ts';

interface ServeCliOptions extends CommonOptions {
  host: string;
  port: string;
  readOnly?: boolean;
  scheduler?: boolean;
  queueRuns?: boolean;
}

export function register(program: Command): void {
  common(
    program
      .command('serve')
      .description('serve the Sync Manager: the web page, the REST API and /metrics; on DuckDB it also runs the scheduler')
      .option('--host <host>', 'the address to listen on; beyond loopback, EBB_SERVER_TOKEN must be set', '127.0.0.1')
      .option('--port <port>', 'the port to listen on', String(defaultPort))
      .option('--read-only', 'refuse every change (runs, pauses, edits, deletes) with 403')
      .option('--scheduler', 'run the syncs on their schedules in this process (the default on DuckDB)')
      .option('--no-scheduler', 'do not run the scheduler here (the default on Snowflake, where tasks and `ebb worker` run the syncs)')
      .option('--queue-runs', 'a trigger queues a run request for `ebb worker` instead of running here (the default on Snowflake)')
      .option('--no-queue-runs', 'a trigger runs the sync in this process (the default on DuckDB)'),
    false,
  ).action(
    action(async (options: ServeCliOptions) => {
      const port = Number(options.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port ${options.port}: give a port number between 0 and 65535`);
      const project = await loadProject(options.projectDir, { dbtManifest: options.dbtManifest });
      const duckdb = project.config.warehouse.type === 'duckdb';
      const scheduler = options.scheduler ?? duckdb;
      const queueRuns = options.queueRuns ?? !duckdb;
      const server = createServer({ project, readOnly: options.readOnly, token: process.env.EBB_SERVER_TOKEN || undefined, scheduler, queueRuns });
      const { url } = await server.listen({ host: options.host, port });
      process.stderr.write(
        `ebb serve: the Sync Manager of ${project.config.name} is at ${url}/ (API ${url}${apiBase}, docs ${url}${apiBase}/docs, metrics ${url}/metrics)` +
          `${options.readOnly ? '; read-only' : ''}${scheduler ? '; the scheduler runs here' : ''}${queueRuns ? '; triggers queue run requests for `ebb worker`' : ''}. Ctrl-C stops it.\n`,
      );
      await new Promise<void>((resolve) => {
        const stop = (signal: NodeJS.Signals) => {
          process.stderr.write(`${signal}: stopping; runs in progress stop sending, and what they did not send is recorded DELAYED\n`);
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await server.close();
      return ExitCode.healthy;
    }),
  );
}
