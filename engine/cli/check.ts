/** `ebb check`: connectivity and credentials of the warehouse and of each connection. */
import type { Command } from 'commander';
import { action, common, withEngine, type CommonOptions } from './common.ts';
import { pluginContext } from '../engine.ts';
import { ExitCode, UsageError } from '../errors.ts';
import { redact } from '../redact.ts';
import { inspectSource, validateDestination } from '../config/validate.ts';

export function register(program: Command): void {
  common(program.command('check').description('test the warehouse and each connection (or one)').argument('[connection]')).action(
    action(async (only: string | undefined, options: CommonOptions) =>
      withEngine(options, async (engine, project) => {
        const names = Object.keys(project.config.connections).filter((n) => !only || n === only);
        if (only && names.length === 0) throw new UsageError(`unknown connection "${only}"`);
        const rows: Array<{ name: string; ok: boolean; message: string }> = [{ name: 'warehouse', ok: true, message: `${project.config.warehouse.type} reachable` }];
        for (const name of names) {
          try {
            await project.plugins.get(name)!.check(pluginContext(engine, name));
            rows.push({ name, ok: true, message: 'ok' });
          } catch (e) {
            rows.push({ name, ok: false, message: redact((e as Error).message) });
            continue;
          }
          // The destinations of the syncs on this connection, where the plugin can check them.
          if (!project.plugins.get(name)!.validate) continue;
          for (const [index, sync] of project.config.syncs.entries()) {
            if (sync.destination.connection !== name) continue;
            const { fieldTypes } = await inspectSource(engine.sql, sync, index);
            const issues = await validateDestination(engine, sync, index, fieldTypes);
            rows.push({ name: `${name} → ${sync.name}`, ok: issues.length === 0, message: issues.length ? issues.map((i) => `${i.path}: ${i.message}`).join('; ') : 'destination ok' });
          }
        }
        if (options.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
        else for (const r of rows) process.stdout.write(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name}: ${r.message}\n`);
        return rows.every((r) => r.ok) ? ExitCode.healthy : ExitCode.failed;
      }),
    ),
  );
}
