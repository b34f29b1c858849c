/** Bench data: a generated project directory and a synthetic contacts table in its DuckDB file. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { stringify } from 'yaml';

/** The sync every bench runs: contacts upserted into a JSONL file, removals deleted. */
export const SYNC = 'contacts';
export const SOURCE_TABLE = 'contacts';
/** The destination columns, each mapped from the source column of the same name. */
export const FIELDS = ['email', 'name', 'score', 'stage', 'updated_at'] as const;
/** Records per plugin call in the end-to-end run. */
export const BATCH_SIZE = 1000;

/** The shares of the source that the incremental change touches (SPEC of the bench). */
export const CHANGE = { changed: 0.1, removed: 0.02, added: 0.05 };

/** A project directory in the system's temp folder, with ebb.yml and an empty warehouse path. */
export interface BenchProject {
  dir: string;
  warehouse: string;
  remove(): Promise<void>;
}

/**
 * DuckDB's memory cap in the end-to-end runs, as a user with a large source would set it: the
 * least under which a first run of a million records runs at full speed (with 160MB, 192MB or
 * 256MB it took as long; with 96MB or 64MB, longer).
 */
export const E2E_MEMORY_LIMIT = process.env.EBB_BENCH_MEMORY_LIMIT ?? '128MB';

/** The sync of the `contacts` table to `out/contacts.jsonl` (connection `out`), as ebb.yml holds it. */
export const CONTACTS_SYNC = {
  name: SYNC,
  source: { table: SOURCE_TABLE, key: 'id' },
  destination: { connection: 'out', object: 'contacts.jsonl' },
  strategy: 'upsert',
  on_remove: 'delete',
  batch_size: BATCH_SIZE,
  mapping: Object.fromEntries(FIELDS.map((f) => [f, f])),
};

/** Writes a project whose ebb.yml syncs the `contacts` table to `out/contacts.jsonl`. */
export async function makeProject(label: string, memoryLimit?: string): Promise<BenchProject> {
  const dir = await mkdtemp(join(tmpdir(), `ebb-bench-${label}-`));
  const config = {
    name: 'bench',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb', ...(memoryLimit && { memory_limit: memoryLimit }) },
    connections: { out: { plugin: 'file', config: { directory: './out' } } },
    syncs: [CONTACTS_SYNC],
  };
  await writeFile(join(dir, 'ebb.yml'), stringify(config));
  return { dir, warehouse: join(dir, 'warehouse.duckdb'), remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * The rows of ids [from, to): deterministic, with some spread in every column so that
 * compression and hashing see realistic values.
 */
function rowsSql(from: number, to: number): string {
  return `
SELECT i AS id,
       'user' || i || '@' || ['example.com', 'mail.test', 'corp.example'][1 + (i % 3)::INTEGER] AS email,
       ['Ada', 'Grace', 'Linus', 'Barbara', 'Ken', 'Margaret', 'Dennis'][1 + (i % 7)::INTEGER] || ' ' ||
         ['Lovelace', 'Hopper', 'Torvalds', 'Liskov', 'Thompson', 'Hamilton', 'Ritchie'][1 + ((i // 7) % 7)::INTEGER] || ' ' || i AS name,
       ((i * 7919) % 1000)::INTEGER AS score,
       ['lead', 'mql', 'sql', 'opportunity', 'customer'][1 + (i % 5)::INTEGER] AS stage,
       TIMESTAMP '2025-01-01 00:00:00' + to_seconds(i * 13) AS updated_at
FROM range(${from}, ${to}) t(i)`;
}

/** SQL that creates the source table with ids 1..rows. */
export function createSourceSql(rows: number): string {
  return `CREATE OR REPLACE TABLE ${SOURCE_TABLE} AS ${rowsSql(1, rows + 1)}`;
}

/**
 * SQL that applies the incremental change: `changed` of the rows get a new score, stage and
 * updated_at; `removed` are deleted; `added` new ids are appended. The three sets are disjoint.
 */
export function modifySourceSql(rows: number): string[] {
  const changed = Math.round(CHANGE.changed * 100);
  const removed = Math.round(CHANGE.removed * 100);
  const added = Math.round(rows * CHANGE.added);
  return [
    `UPDATE ${SOURCE_TABLE} SET score = score + 1, stage = 'churned', updated_at = updated_at + INTERVAL 1 DAY WHERE id % 100 < ${changed}`,
    `DELETE FROM ${SOURCE_TABLE} WHERE id % 100 >= ${changed} AND id % 100 < ${changed + removed}`,
    `INSERT INTO ${SOURCE_TABLE} ${rowsSql(rows + 1, rows + 1 + added)}`,
  ];
}

/** The change set the modification must produce, per action. */
export function expectedChanges(rows: number): { update: number; delete: number; create: number } {
  const changed = Math.round(CHANGE.changed * 100);
  const removed = Math.round(CHANGE.removed * 100);
  let update = 0;
  let remove = 0;
  for (let i = 1; i <= rows; i++) {
    const m = i % 100;
    if (m < changed) update++;
    else if (m < changed + removed) remove++;
  }
  return { update, delete: remove, create: Math.round(rows * CHANGE.added) };
}

/** Creates the source table in a DuckDB file that no other process holds, then closes it. */
export async function createSourceFile(path: string, rows: number): Promise<void> {
  const instance = await DuckDBInstance.create(path);
  const conn = await instance.connect();
  try {
    await conn.run(createSourceSql(rows));
    await conn.run('CHECKPOINT');
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}
