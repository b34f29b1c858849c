/** `ebb status`: every sync with its status, health, last run and counts. */
import type { Command } from 'commander';
import { action, common, print, withEngine, type CommonOptions } from './common.ts';
import { readCatalog } from '../catalog/catalog.ts';

export function register(program: Command): void {
  common(program.command('status').description('every sync with its status, health, last run and counts')).action(
    action(async (options: CommonOptions) =>
      withEngine(options, async (engine, project) => {
        const catalog = await readCatalog(engine.sql);
        const health = new Map((await engine.sql.runAndRead('status_list')).map((r) => [String(r.sync_name), r]));
        const rows: Record<string, unknown>[] = catalog.map((e) => ({ ...health.get(e.name), sync_name: e.name, status: e.status, origin: e.origin, overrides: Object.keys(e.overrides).length ? e.overrides : null }));
        // Syncs in ebb.yml that no deploy has put in the catalog yet.
        for (const sync of project.config.syncs) {
          if (!catalog.some((e) => e.name === sync.name)) rows.push({ sync_name: sync.name, status: 'NOT DEPLOYED', health: 'PENDING' });
        }
        print(rows, options, ['sync_name', 'status', 'health', 'schedule', 'last_run_started_at', 'succeeded', 'failed', 'delayed', 'source_failures', 'records', 'failing_records', 'last_error']);
      }, { readOnly: true }),
    ),
  );
}
