/** Opens the project's warehouse and makes sure ebb's tables exist. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Project } from '../config/load.ts';
import { DuckdbWarehouse } from './duckdb.ts';
import { SnowflakeWarehouse } from './snowflake.ts';
import type { Warehouse } from './warehouse.ts';
import { Sql } from './sql.ts';
import { EbbError } from '../errors.ts';

/** The version of ebb's tables; `setup` migrates older ones. */
export const SCHEMA_VERSION = 1;

/** How to open: `readOnly` for commands that only read ebb's tables (status, runs, history). */
export interface OpenOptions {
  readOnly?: boolean;
}

/**
 * Opens the warehouse of ebb.yml and creates ebb's tables (idempotent). With `readOnly`, when
 * ebb's tables are there at this version, nothing is created: a DuckDB file is opened read-only
 * (a read-only file, or one shared with other readers, will do) and Snowflake runs no DDL.
 */
export async function openWarehouse(project: Project, options: OpenOptions = {}): Promise<Sql> {
  if (options.readOnly) {
    const sql = await openToRead(project);
    if (sql) return sql;
  }
  const config = project.config.warehouse;
  return usingWarehouse(await open(project), config.state_schema, async (sql) => {
    await sql.runScript('setup');
    const [row] = await sql.runAndRead('schema_version_get');
    if (row === undefined) await sql.run('schema_version_set', { version: SCHEMA_VERSION });
    else checkNotNewer(row.version, config.state_schema);
    return sql;
  });
}

/** The warehouse opened to read, when ebb's tables are current; null when they need a setup first. */
async function openToRead(project: Project): Promise<Sql | null> {
  const config = project.config.warehouse;
  // A file that does not exist yet cannot be opened read-only: the normal open creates it.
  if (config.type === 'duckdb' && (config.path === ':memory:' || !existsSync(resolve(project.dir, config.path)))) return null;
  return usingWarehouse(await open(project, true), config.state_schema, async (sql) => {
    // Missing tables (a warehouse that ebb never set up) read as an error here: set them up then.
    const [row] = await sql.runAndRead('schema_version_get').catch(() => [undefined]);
    if (row !== undefined) checkNotNewer(row.version, config.state_schema);
    if (row !== undefined && Number(row.version) === SCHEMA_VERSION) return sql;
    await sql.warehouse.close();
    return null;
  });
}

function open(project: Project, readOnly = false): Promise<Warehouse> {
  const config = project.config.warehouse;
  return config.type === 'snowflake' ? SnowflakeWarehouse.open(config, project.dir) : DuckdbWarehouse.open(config, project.dir, { readOnly });
}

/** Runs the checks of a freshly opened warehouse, closing it when they throw. */
async function usingWarehouse<T>(warehouse: Warehouse, stateSchema: string, body: (sql: Sql) => Promise<T>): Promise<T> {
  try {
    return await body(new Sql(warehouse, stateSchema));
  } catch (e) {
    // A Snowflake session left open would keep the process alive (its keep-alive heartbeat).
    await warehouse.close().catch(() => undefined);
    throw e;
  }
}

function checkNotNewer(version: unknown, stateSchema: string): void {
  if (Number(version) > SCHEMA_VERSION) {
    throw new EbbError(`ebb's tables in schema ${stateSchema} are version ${String(version)}, newer than this ebb (${SCHEMA_VERSION}); upgrade ebb`);
  }
}
