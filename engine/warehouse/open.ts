/** Opens the project's warehouse and makes sure ebb's tables exist. */
import type { Project } from '../config/load.ts';
import { DuckdbWarehouse } from './duckdb.ts';
import { Sql } from './sql.ts';
import { EbbError } from '../errors.ts';

/** The version of ebb's tables; `setup` migrates older ones. */
export const SCHEMA_VERSION = 1;

/** Opens the warehouse of ebb.yml and creates ebb's tables (idempotent). */
export async function openWarehouse(project: Project): Promise<Sql> {
  const config = project.config.warehouse;
  if (config.type !== 'duckdb') throw new EbbError(`warehouse type ${config.type} is not supported by this build of ebb yet`);
  const warehouse = await DuckdbWarehouse.open(config, project.dir);
  const sql = new Sql(warehouse, config.state_schema);
  await sql.runScript('setup');
  const [row] = await sql.runAndRead('schema_version_get');
  if (row === undefined) await sql.run('schema_version_set', { version: SCHEMA_VERSION });
  else if (Number(row.version) > SCHEMA_VERSION) {
    await warehouse.close();
    throw new EbbError(`ebb's tables in schema ${config.state_schema} are version ${String(row.version)}, newer than this ebb (${SCHEMA_VERSION}); upgrade ebb`);
  }
  return sql;
}
