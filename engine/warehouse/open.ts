/** Opens the project's warehouse and checks that ebb's tables are there, at this ebb's version. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Project } from '../config/load.ts';
import { DuckdbWarehouse } from './duckdb.ts';
import { SnowflakeWarehouse } from './snowflake.ts';
import type { Warehouse } from './warehouse.ts';
import { Sql } from './sql.ts';
import { EbbError } from '../errors.ts';

/**
 * The version of ebb's tables; `setup` migrates older ones.
 * 2: sync_record_state.hash_version (record hashes over an ordered array, see plan_rehash).
 * 3: syncs.project_name (projects that share a state schema, see deploy.ts).
 * 4: deploy_lock (concurrent deploys write the catalog one at a time, see deploy-lock.ts).
 * 5: sync_batch_outcomes (the outcomes of consecutive records that all succeeded, one row for the lot).
 */
export const SCHEMA_VERSION = 5;

/** How to open: `readOnly` for commands that only read ebb's tables (status, runs, history). */
export interface OpenOptions {
  readOnly?: boolean;
}

/**
 * Opens the warehouse of ebb.yml. Every command reads the version of ebb's tables, one query; when
 * they are current, it sends no DDL at all, so that a role without DDL privileges (a runner, an
 * analyst) can run it, and the grants on ebb's tables and views stay as the owner made them.
 * When they are missing or older, the setup and its migrations run (a role that owns the state
 * schema does that: `ebb deploy`). The commands that only read never set up a Snowflake schema:
 * they say to deploy first. On DuckDB, which has no roles, they set up a file they find missing,
 * and otherwise open it read-only (a read-only file, or one shared with other readers, will do).
 */
export async function openWarehouse(project: Project, options: OpenOptions = {}): Promise<Sql> {
  const config = project.config.warehouse;
  if (options.readOnly && config.type === 'duckdb') {
    const sql = await openToRead(project);
    if (sql) return sql;
  }
  return usingWarehouse(await open(project), config.state_schema, async (sql) => {
    const version = await schemaVersion(sql);
    if (version === SCHEMA_VERSION) return sql;
    if (options.readOnly && config.type === 'snowflake') {
      throw new EbbError(
        `ebb's tables in schema ${config.state_schema} are ${version === null ? 'not set up' : `version ${version}, older than this ebb's (${SCHEMA_VERSION})`}; ` +
          'run `ebb deploy` with the role that owns the schema first',
      );
    }
    await setUp(sql, config.state_schema);
    return sql;
  });
}

/** The version of ebb's tables: null when they are not there. Throws when they are newer than this ebb. */
async function schemaVersion(sql: Sql): Promise<number | null> {
  // Missing tables (a warehouse that ebb never set up) read as an error here.
  const [row] = await sql.runAndRead('schema_version_get').catch(() => [undefined]);
  if (row === undefined) return null;
  const version = Number(row.version);
  if (version > SCHEMA_VERSION) {
    throw new EbbError(`ebb's tables in schema ${sql.stateSchema} are version ${version}, newer than this ebb (${SCHEMA_VERSION}); upgrade ebb`);
  }
  return version;
}

/** Creates or migrates ebb's tables (idempotent DDL), then records this version. */
async function setUp(sql: Sql, stateSchema: string): Promise<void> {
  try {
    await sql.runScript('setup');
  } catch (e) {
    const message = (e as Error).message;
    throw new EbbError(
      `cannot set up ebb's tables in schema ${stateSchema} (they are missing or older than this ebb); a role that owns the schema sets them up: ` +
        `run \`ebb deploy\` with it once, then other roles need no DDL. ${message}`,
    );
  }
  await sql.run('schema_version_set', { version: SCHEMA_VERSION });
}

/** The DuckDB file opened to read, when ebb's tables are current; null when they need a setup first. */
async function openToRead(project: Project): Promise<Sql | null> {
  const config = project.config.warehouse;
  // A file that does not exist yet cannot be opened read-only: the normal open creates it.
  if (config.type === 'duckdb' && (config.path === ':memory:' || !existsSync(resolve(project.dir, config.path)))) return null;
  return usingWarehouse(await open(project, true), config.state_schema, async (sql) => {
    if ((await schemaVersion(sql)) === SCHEMA_VERSION) return sql;
    await sql.warehouse.close();
    return null;
  });
}

function open(project: Project, readOnly = false): Promise<Warehouse> {
  const config = project.config.warehouse;
  return config.type === 'snowflake' ? SnowflakeWarehouse.open(config, project.dir, { project: project.config.name }) : DuckdbWarehouse.open(config, project.dir, { readOnly });
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
