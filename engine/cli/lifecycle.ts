/** `ebb pause`, `resume`, `revert` and `delete`: a sync's lifecycle in the catalog. */
import type { Command } from 'commander';
import { action, common, withEngine, type CommonOptions } from './common.ts';
import { deleteSync, pauseSync, resumeSync, revertSync } from '../ops/index.ts';

const warn = (message: string) => process.stderr.write(`warning: ${message}\n`);

export function register(program: Command): void {
  common(program.command('pause').description('pause a sync: runs refuse it and `run --all` skips it (an admin override)').argument('<sync>'), false).action(
    action(async (name: string, options: CommonOptions) =>
      withEngine(options, async (engine) => {
        await pauseSync(engine, name, { warn });
        process.stdout.write(`${name}: PAUSED\n`);
      }),
    ),
  );
  common(program.command('resume').description('resume a paused sync, or one in ERROR or COMPLETED').argument('<sync>'), false).action(
    action(async (name: string, options: CommonOptions) =>
      withEngine(options, async (engine) => {
        await resumeSync(engine, name, { warn });
        process.stdout.write(`${name}: ACTIVE\n`);
      }),
    ),
  );
  common(program.command('revert').description("drop a sync's admin overrides: the settings from code apply again").argument('<sync>'), false).action(
    action(async (name: string, options: CommonOptions) =>
      withEngine(options, async (engine) => {
        const { removed } = await revertSync(engine, name, { warn });
        process.stdout.write(`${name}: overrides removed (${removed.join(', ') || 'there were none'})\n`);
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
      withEngine(options, async (engine) => {
        await deleteSync(engine, name, { confirmed: options.yes, warn });
        process.stdout.write(`${name}: deleted (its runs and history stay in the warehouse)\n`);
      }),
    ),
  );
}
