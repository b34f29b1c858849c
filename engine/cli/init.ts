/** `ebb init [dir]`: a working project with sample data in DuckDB and syncs to local destinations. */
import type { Command } from 'commander';
import { copyFile, mkdir, readFile, access } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { action } from './common.ts';
import { DuckdbWarehouse } from '../warehouse/duckdb.ts';
import { UsageError } from '../errors.ts';
import { packageRoot } from '../paths.ts';

const scaffold = fileURLToPath(new URL('engine/cli/scaffold/', packageRoot));

/** Writes ebb.yml and the sample warehouse into `dir`; refuses to overwrite a project. */
export async function initProject(dir: string): Promise<void> {
  const target = resolve(dir);
  const exists = await access(join(target, 'ebb.yml')).then(() => true, () => false);
  if (exists) throw new UsageError(`${join(target, 'ebb.yml')} exists already; choose another directory`);
  try {
    await mkdir(target, { recursive: true });
    await copyFile(join(scaffold, 'ebb.yml'), join(target, 'ebb.yml'));
  } catch (e) {
    const { code, message } = e as NodeJS.ErrnoException;
    throw new UsageError(`cannot create a project in ${target} (${code ?? message}); choose a directory that you can write to`);
  }
  const warehouse = await DuckdbWarehouse.open({ path: 'warehouse.duckdb' }, target);
  try {
    const script = await readFile(join(scaffold, 'sample.sql'), 'utf8');
    for (const statement of script.split(/;\s*\n/).map((s) => s.trim()).filter(Boolean)) await warehouse.run(statement);
  } finally {
    await warehouse.close();
  }
}

export function register(program: Command): void {
  program
    .command('init')
    .description('scaffold a working project: sample data in a DuckDB file, and syncs to local destinations')
    .argument('[dir]', 'where to create it (default: --project-dir, or the current directory)')
    .option('--project-dir <dir>', 'where to create it, as for the other commands')
    .action(
      action(async (given: string | undefined, options: { projectDir?: string }) => {
        const dir = given ?? options.projectDir ?? '.';
        await initProject(dir);
        process.stdout.write(
          `Created an ebb project in ${resolve(dir)}.\n` +
            `Next: cd ${dir} && ebb validate && ebb plan customers_to_file && ebb run --select tag:files\n` +
            `The customers_to_crm sync needs an HTTP app on port $CRM_PORT (8787); \`npm run demo\` in the ebb repo starts one.\n`,
        );
      }),
    );
}
