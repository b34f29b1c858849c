/** `ebb pause` and `ebb resume`: stop and restart a sync's runs. */
import type { Command } from 'commander';
import { action, common, withEngine, type CommonOptions } from './common.ts';
import { registerSyncs, selectSyncs } from '../engine.ts';

export function register(program: Command): void {
  for (const [verb, status, help] of [
    ['pause', 'PAUSED', 'pause a sync: runs refuse it and `run --all` skips it'],
    ['resume', 'ACTIVE', 'resume a paused sync'],
  ] as const) {
    common(program.command(verb).description(help).argument('<sync>'), false).action(
      action(async (name: string, options: CommonOptions) =>
        withEngine(options, async (engine, project) => {
          selectSyncs(project, [name]);
          await registerSyncs(engine);
          await engine.sql.run('sync_set_status', { sync_name: name, status });
          process.stdout.write(`${name}: ${status}\n`);
        }),
      ),
    );
  }
}
