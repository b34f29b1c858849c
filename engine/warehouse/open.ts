/** Opens the project's warehouse and makes sure ebb's tables exist. */
import type { Project } from '../config/load.ts';
import { DuckdbWarehouse } from './duckdb.ts';
import { SnowflakeWarehouse } from './snowflake.ts';
import type { Warehouse } from './warehouse.ts';
import { Sql } from './sql.ts';
import { EbbError } from '../errors.ts';

/** The version of ebb's tables; `setup` migrates older ones. */
export const SCHEMA_VERSION = 1;

/** Opens the warehouse of ebb.yml and creates ebb's tables (idempotent). */
export async function openWarehouse(project: Project): Promise<Sql> {
  const config = project.config.warehouse;
  const warehouse: Warehouse = config.type === 'snowflake' ? await SnowflakeWarehouse.open(config, project.dir) : await DuckdbWarehouse.open(config, project.dir);
  const sql = new Sql(warehouse, config.state_schema);
  try {
    await sql.runScript('setup');
    const [row] = await sql.runAndRead('schema_version_get');
    if (row === undefined) await sql.run('schema_version_set', { version: SCHEMA_VERSION });
    else if (Number(row.version) > SCHEMA_VERSION) {
      throw new EbbError(`ebb's tables in schema ${config.state_schema} are version ${String(row.version)}, newer than this ebb (${SCHEMA_VERSION}); upgrade ebb`);
    }
  } catch (e) {
    // A Snowflake session left open would keep the process alive (its keep-alive heartbeat).
    await warehouse.close().catch(() => undefined);
    throw e;
  }
  return sql;
}
