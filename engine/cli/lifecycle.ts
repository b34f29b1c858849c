/** `ebb pause`, `resume`, `revert` and `delete`: a sync's lifecycle in the catalog. */
import type { Command } from 'commander';
import { action, common, withEngine, type CommonOptions } from './common.ts';
import type { Engine } from '../engine.ts';
import { readCatalog, type CatalogEntry } from '../catalog/catalog.ts';
import { ConfigError, UsageError } from '../errors.ts';
import { autoDeploy } from '../catalog/deploy.ts';

async function entryOf(engine: Engine, name: string): Promise<CatalogEntry> {
  // As `run` does: the code is deployed first, so a sync can be paused before it ever ran. An
  // invalid ebb.yml deploys nothing, but a broken sync can still be paused.
  const warn = (message: string) => process.stderr.write(`warning: ${message}\n`);
  await autoDeploy(engine, warn).catch((e: unknown) => {
    if (!(e instanceof ConfigError)) throw e;
    warn(`not deploying, acting on the catalog as it is: ${e.message}`);
  });
  const catalog = await readCatalog(engine.sql);
  const entry = catalog.find((e) => e.name === name);
  if (!entry) throw new UsageError(`unknown sync "${name}"; the catalog holds: ${catalog.map((e) => e.name).join(', ') || '(none; run `ebb deploy`)'}`);
  return entry;
}

/** Writes the status and the overrides of a sync (the overrides as an admin would, in the warehouse). */
async function setStatus(engine: Engine, entry: CatalogEntry, status: string, overrides: CatalogEntry['overrides'] | null) {
  await engine.sql.run('sync_set_status', { sync_name: entry.name, status, overrides: overrides && Object.keys(overrides).length ? JSON.stringify(overrides) : null });
}

export function register(program: Command): void {
  common(program.command('pause').description('pause a sync: runs refuse it and `run --all` skips it (an admin override)').argument('<sync>'), false).action(
    action(async (name: string, options: CommonOptions) =>
      withEngine(options, async (engine) => {
        const entry = await entryOf(engine, name);
        await setStatus(engine, entry, 'PAUSED', { ...entry.overrides, status: 'PAUSED' });
        process.stdout.write(`${name}: PAUSED\n`);
      }),
    ),
  );
  common(program.command('resume').description('resume a paused sync, or one in ERROR or COMPLETED').argument('<sync>'), false).action(
    action(async (name: string, options: CommonOptions) =>
      withEngine(options, async (engine) => {
        const entry = await entryOf(engine, name);
        const { status: _status, ...rest } = entry.overrides;
        await setStatus(engine, entry, 'ACTIVE', rest);
        process.stdout.write(`${name}: ACTIVE\n`);
      }),
    ),
  );
  common(program.command('revert').description("drop a sync's admin overrides: the settings from code apply again").argument('<sync>'), false).action(
    action(async (name: string, options: CommonOptions) =>
      withEngine(options, async (engine) => {
        const entry = await entryOf(engine, name);
        await setStatus(engine, entry, entry.overrides.status === 'PAUSED' ? 'ACTIVE' : entry.status, null);
        process.stdout.write(`${name}: overrides removed (${Object.keys(entry.overrides).join(', ') || 'there were none'})\n`);
      }),
    ),
  );
  common(
    program
      .command('delete')
      .description('remove a sync from the catalog with its record state; its runs and history stay')
      .argument('<sync>')
      .option('--yes', 'confirm the deletion'),
    false,
  ).action(
    action(async (name: string, options: CommonOptions & { yes?: boolean }) =>
      withEngine(options, async (engine, project) => {
        const entry = await entryOf(engine, name);
        if (!options.yes) throw new UsageError(`deleting ${name} drops its state of ${entry.records} records (history stays); confirm with --yes`);
        for (const table of ['sync_record_state', 'syncs']) await engine.sql.run('catalog_delete', { table, sync_name: name });
        process.stdout.write(`${name}: deleted (its runs and history stay in the warehouse)\n`);
        if (project.config.syncs.some((s) => s.name === name)) {
          process.stderr.write(`warning: ${name} is still in ebb.yml; the next deploy creates it again. Remove it there.\n`);
        }
      }),
    ),
  );
}
