/** `ebb status`: every sync with its status, health, last run and counts. */
import type { Command } from 'commander';
import { action, common, print, withEngine, type CommonOptions } from './common.ts';
import { readCatalog } from '../catalog/catalog.ts';
import { topErrors } from '../record/record.ts';
import { topErrorText } from './progress.ts';

export function register(program: Command): void {
  common(program.command('status').description('every sync with its status, health, last run and counts')).action(
    action(async (options: CommonOptions) =>
      withEngine(options, async (engine, project) => {
        const catalog = await readCatalog(engine.sql);
        const health = new Map((await engine.sql.runAndRead('status_list')).map((r) => [String(r.sync_name), r]));
        const failing = [...health.values()].filter((r) => r.last_run_id && Number(r.failed ?? 0) + Number(r.source_failures ?? 0) > 0).map((r) => String(r.last_run_id));
        const tops = await topErrors(engine.sql, failing);
        const rows: Record<string, unknown>[] = catalog.map((e) => {
          const row = health.get(e.name);
          return {
            ...row,
            sync_name: e.name,
            status: e.status,
            origin: e.origin,
            overrides: Object.keys(e.overrides).length ? e.overrides : null,
            override_issues: e.overrideIssues.length ? e.overrideIssues.map((i) => `${i.path}: ${i.message}`) : null,
            top_error: (row?.last_run_id && tops.get(String(row.last_run_id))) || null,
          };
        });
        // Syncs in ebb.yml that no deploy has put in the catalog yet.
        for (const sync of project.config.syncs) {
          if (!catalog.some((e) => e.name === sync.name)) rows.push({ sync_name: sync.name, status: 'NOT DEPLOYED', health: 'PENDING' });
        }
        print(rows, options, ['sync_name', 'status', 'health', 'schedule', 'last_run_started_at', 'succeeded', 'failed', 'delayed', 'source_failures', 'records', 'failing_records', 'last_error']);
        if (options.json) return;
        // What the table cannot hold: the most common error of each failing sync, and overrides that were not applied.
        for (const row of rows) {
          const top = row.top_error as Parameters<typeof topErrorText>[2] | null;
          if (top) process.stdout.write(`${String(row.sync_name)}: most common error of its last run: ${topErrorText(String(row.sync_name), String(row.last_run_id), top)}\n`);
          for (const issue of (row.override_issues as string[] | null) ?? []) process.stdout.write(`${String(row.sync_name)}: warning: ${issue}\n`);
        }
      }, { readOnly: true }),
    ),
  );
}
