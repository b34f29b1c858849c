/** `ebb validate`: the config, the plugin configs, the sources, the columns and the mappings. */
import type { Command } from 'commander';
import { action, common, withEngine, type CommonOptions } from './common.ts';
import { validateProject } from '../config/validate.ts';

export function register(program: Command): void {
  common(program.command('validate').description('check ebb.yml, the plugin configs, the source columns, the mappings and the request templates; sends nothing'), false).action(
    action(async (options: CommonOptions) =>
      withEngine(options, async (engine, project) => {
        await validateProject(engine.sql, project.config.syncs, { engine });
        process.stdout.write(`ebb.yml is valid: ${project.config.syncs.length} syncs, ${Object.keys(project.config.connections).length} connections\n`);
      }),
    ),
  );
}
