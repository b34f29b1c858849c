/**
 * The `file` plugin (SPEC §6): a JSONL or CSV file that holds a destination's current state, one
 * line per record, holding just the transformed record.
 *
 * Key index. To update or delete a record the plugin must know which line holds it, and the data
 * file has no room for that. So a sidecar `<object>.keys` holds a header line, then the key of
 * each record as a JSON string, in the order of the data file. The header records the data
 * file's size: a hand edit, or a crash between the two renames of a rewrite, is then reported
 * instead of pairing keys with the wrong lines.
 *
 * Memory. Nothing lands before `close()`, which renames temp files over the file and its index
 * (atomicRun). Until then, new records (create, recreate, send) are streamed to two journal files,
 * their lines as the file will hold them and their keys as the index will, and only updates,
 * clears and deletes, a small part of an incremental run, are kept in memory, with the keys of the
 * existing file (keys only). A first run of a million records holds nothing. Where there is a file
 * to keep, close() writes the new one: the kept lines, edited, then the journal's. Where there is
 * none (a first run, replace), the journals begin with the file's header and the index's, and they
 * become the file and its index: a million records are not copied again.
 */
import { mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { z } from 'zod';
import type { Change, Outcome, Plugin, Session, SessionContext } from '../plugin.ts';
import { csvRecord, csvRecords, csvRow, parseCsvRecord } from './csv.ts';
import { recordJson, stringifyJson } from '../shared/json.ts';
import { FileWriter, readLines } from './lines.ts';

/** The connection's config. */
export const fileConfigSchema = z.strictObject({
  /** Where the files go, relative to ebb.yml. */
  directory: z.string().min(1).default('./out'),
});
export type FileConfig = z.infer<typeof fileConfigSchema>;

/** A sync's destination: `object` is a file name whose extension sets the format. */
export const fileDestinationSchema = z.looseObject({
  object: z
    .string()
    .regex(/^[^/\\]*$/, "must be a file name, without a directory (set the connection's config.directory)")
    .regex(/\.(jsonl|csv)$/, 'must end in .jsonl or .csv'),
});
export type FileDestination = z.infer<typeof fileDestinationSchema>;

type Context = SessionContext<FileConfig, FileDestination>;

/** The key index's first line, padded so it can be written last, in place, at a fixed width. */
interface IndexHeader {
  ebb_keys: 1;
  data_bytes: number;
}
const headerWidth = 80;

const plugin: Plugin<FileConfig, FileDestination> = {
  name: 'file',
  configSchema: fileConfigSchema,
  destinationSchema: fileDestinationSchema,
  capabilities: { atomicRun: true },

  async check(ctx) {
    const dir = resolve(ctx.projectDir, ctx.config.directory);
    const probe = join(dir, `.ebb-check-${randomBytes(6).toString('hex')}`);
    try {
      await mkdir(dir, { recursive: true });
      await writeFile(probe, '');
      await rm(probe);
    } catch (e) {
      throw new Error(`cannot write to directory ${dir}: ${(e as Error).message}`);
    }
  },

  async open(ctx) {
    const dir = resolve(ctx.projectDir, ctx.config.directory);
    await mkdir(dir, { recursive: true });
    const target = join(dir, ctx.destination.object);
    // replace overwrites the file, so what it holds is never read.
    const merge = ctx.strategy !== 'replace' && (await exists(target));
    if (merge) await checkIndex(target, ctx.projectDir);
    return new FileSession(ctx, target, merge);
  },
};

export default plugin;

class FileSession implements Session {
  private readonly index: string;
  private readonly csv: boolean;
  /** New records as the file holds them, one line each, in arrival order; and their keys, as the index holds them. */
  private readonly journal: FileWriter;
  private readonly journalKeys: FileWriter;
  private journaled = 0;
  /** Updates and clears (the new line) and deletes (null) of lines already in the file. */
  private readonly edits = new Map<string, string | null>();
  /** The keys in the file, loaded on first need. */
  private keys: Promise<Set<string>> | undefined;
  private closed = false;

  constructor(
    private readonly ctx: Context,
    private readonly target: string,
    /** Whether the existing file is kept and edited (false: no file yet, or replace). */
    private readonly merge: boolean,
  ) {
    this.index = indexPath(target);
    this.csv = target.endsWith('.csv');
    this.journal = new FileWriter(tempPath(target, 'journal'), !merge && this.csv ? `${csvRow(ctx.fields)}\n` : '');
    this.journalKeys = new FileWriter(tempPath(this.index, 'journal'), merge ? '' : `${' '.repeat(headerWidth)}\n`);
  }

  async apply(changes: Change[]): Promise<Outcome[]> {
    if (this.closed) throw new Error(`file plugin: apply() after close() on ${this.ctx.destination.object}`);
    const action = changes[0]?.action;
    if (!action) return [];
    if (this.ctx.strategy === 'replace') {
      // The file becomes exactly the records of this run: each one is new, a delete removes nothing.
      return action === 'delete' ? changes.map(succeeded) : this.append(changes, false);
    }
    if (action === 'create') return this.append(changes, true);
    if (action === 'recreate' || action === 'send') return this.append(changes, false);
    return this.edit(changes);
  }

  async close(commit: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const temps = [this.journal.path, this.journalKeys.path];
    try {
      if (!commit) {
        await Promise.all([this.journal.abort(), this.journalKeys.abort()]);
        return;
      }
      await Promise.all([this.journal.close(), this.journalKeys.close()]);
      if (!this.merge) return await this.install();
      // An incremental run that changed nothing leaves the file (and its mtime) alone.
      if (this.journaled === 0 && this.edits.size === 0) return;
      await this.rewrite(temps);
    } finally {
      await Promise.all(temps.map((p) => rm(p, { force: true })));
    }
  }

  /** Journals new records; a create whose key the file already holds is a conflict. */
  private async append(changes: Change[], detectConflicts: boolean): Promise<Outcome[]> {
    const existing = detectConflicts ? await this.existingKeys() : undefined;
    const outcomes: Outcome[] = [];
    let lines = '';
    let keys = '';
    for (const change of changes) {
      const id = change.appId ?? change.key;
      if (existing?.has(id)) {
        outcomes.push(failed(change, 'conflict', `${this.ctx.destination.object} already holds a record with key ${id}`, id));
        continue;
      }
      lines += `${this.line(change)}\n`;
      keys += `${stringifyJson(id)}\n`;
      this.journaled++;
      outcomes.push(succeeded(change));
    }
    await Promise.all([this.journal.write(lines), this.journalKeys.write(keys)]);
    return outcomes;
  }

  /** Remembers updates, clears and deletes of lines in the file; an unknown key is not found. */
  private async edit(changes: Change[]): Promise<Outcome[]> {
    const existing = await this.existingKeys();
    return changes.map((change) => {
      const id = change.appId ?? change.key;
      if (!existing.has(id)) {
        return failed(change, 'not_found', `${this.ctx.destination.object} holds no record with key ${id}`);
      }
      if (change.action === 'delete') {
        this.edits.set(id, null);
        existing.delete(id);
      } else {
        this.edits.set(id, this.line(change));
      }
      return succeeded(change);
    });
  }

  /** The line of a change's record: a clear sets every mapped field to null, whatever the record holds. */
  private line(change: Change): string {
    const record = change.action === 'clear' ? Object.fromEntries(this.ctx.fields.map((f) => [f, null])) : undefined;
    if (this.csv) return csvRecord(record ?? change.record, this.ctx.fields);
    return record ? stringifyJson(record) : recordJson(change);
  }

  private existingKeys(): Promise<Set<string>> {
    this.keys ??= this.merge ? loadKeys(this.index) : Promise.resolve(new Set());
    return this.keys;
  }

  /** Without a file to keep: the journals, which began with the headers, become the file and its index. */
  private async install(): Promise<void> {
    await writeHeader(this.journalKeys.path, { ebb_keys: 1, data_bytes: (await stat(this.journal.path)).size });
    await this.replaceFiles(this.journal.path, this.journalKeys.path);
  }

  /** Writes the new file and index to temp files (listed in `temps`): the existing records, edited, then the journal's. */
  private async rewrite(temps: string[]): Promise<void> {
    const dataTemp = tempPath(this.target, 'tmp');
    const indexTemp = tempPath(this.index, 'tmp');
    temps.push(dataTemp, indexTemp);
    const data = new FileWriter(dataTemp);
    const keys = new FileWriter(indexTemp);
    const put = async (id: string, line: string) => {
      await data.write(`${line}\n`);
      await keys.write(`${stringifyJson(id)}\n`);
    };
    try {
      await keys.write(`${' '.repeat(headerWidth)}\n`); // the header needs the final size: written last
      if (this.csv) await data.write(`${csvRow(this.ctx.fields)}\n`);
      for await (const [id, line] of this.existingRecords()) {
        const edit = this.edits.get(id);
        if (edit === undefined) await put(id, line);
        else if (edit !== null) await put(id, edit);
      }
      // The new records follow, as journaled: already in the file's form.
      await data.copyFrom(this.journal.path);
      await keys.copyFrom(this.journalKeys.path);
      await data.close();
      await keys.close();
    } catch (e) {
      await Promise.all([data.abort(), keys.abort()]);
      throw e;
    }
    await writeHeader(indexTemp, { ebb_keys: 1, data_bytes: (await stat(dataTemp)).size });
    await this.replaceFiles(dataTemp, indexTemp);
  }

  /** Renames the new data file and index over the file and its index. */
  private async replaceFiles(data: string, index: string): Promise<void> {
    // Data first: a crash between the renames leaves an index whose size check fails loudly.
    await rename(data, this.target);
    await rename(index, this.index);
  }

  /** The records of the existing file with their keys, CSV ones converted to the current fields. */
  private async *existingRecords(): AsyncGenerator<[string, string]> {
    const keys = readKeys(this.index);
    const records = this.csv ? csvRecords(readLines(this.target)) : readLines(this.target);
    let convert: ((line: string) => string) | undefined;
    let header = this.csv;
    try {
      for await (const record of records) {
        if (header) {
          header = false;
          convert = csvConverter(record, this.ctx.fields);
          continue;
        }
        const key = await keys.next();
        if (key.done) throw indexMismatch(this.target, this.ctx.projectDir);
        yield [key.value, convert ? convert(record) : record];
      }
      if (!(await keys.next()).done) throw indexMismatch(this.target, this.ctx.projectDir);
    } finally {
      await keys.return(undefined); // closes the index's read stream on an early exit
    }
  }
}

/**
 * When the mapping's fields changed since the file was written, its kept rows are rewritten under
 * the new header (by column name; a new column is empty), so the file stays one table.
 */
function csvConverter(header: string, fields: readonly string[]): ((line: string) => string) | undefined {
  if (header === csvRow(fields)) return undefined;
  const old = parseCsvRecord(header);
  const positions = fields.map((f) => old.indexOf(f));
  return (line) => {
    const values = parseCsvRecord(line);
    return csvRow(positions.map((p) => (p === -1 ? null : values[p])));
  };
}

function succeeded(change: Change): Outcome {
  return { key: change.key, success: true, appId: change.appId ?? change.key };
}

function failed(change: Change, kind: 'conflict' | 'not_found', message: string, existingAppId?: string): Outcome {
  return { key: change.key, success: false, appId: change.appId, error: { kind, message, existingAppId } };
}

function indexPath(target: string): string {
  return `${target}.keys`;
}

/** A hidden temp file next to `path`: a rename within one directory is atomic. */
function tempPath(path: string, suffix: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.${suffix}`);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The keys of an index, in order, without its header. */
async function* readKeys(index: string): AsyncGenerator<string> {
  let header = true;
  for await (const line of readLines(index)) {
    if (header) header = false;
    else yield JSON.parse(line) as string;
  }
}

async function loadKeys(index: string): Promise<Set<string>> {
  const keys = new Set<string>();
  for await (const key of readKeys(index)) keys.add(key);
  return keys;
}

async function readHeader(index: string): Promise<IndexHeader | undefined> {
  try {
    for await (const line of readLines(index)) {
      const header = JSON.parse(line) as Partial<IndexHeader>;
      return header.ebb_keys === 1 && typeof header.data_bytes === 'number' ? (header as IndexHeader) : undefined;
    }
  } catch {
    // A missing or unreadable index is reported by the caller.
  }
  return undefined;
}

async function writeHeader(index: string, header: IndexHeader): Promise<void> {
  const line = JSON.stringify(header).padEnd(headerWidth);
  const file = await open(index, 'r+');
  try {
    await file.write(line, 0);
    await file.sync();
  } finally {
    await file.close();
  }
}

/** Throws unless the file's key index exists and describes this very file. */
async function checkIndex(target: string, projectDir: string): Promise<void> {
  const header = await readHeader(indexPath(target));
  if (!header) {
    throw new Error(
      `${relative(projectDir, target)} has no valid key index ${basename(indexPath(target))}, so ebb cannot tell ` +
        'which line holds which record. Delete the file and run the sync with --full-resync, or use the replace strategy.',
    );
  }
  if (header.data_bytes !== (await stat(target)).size) throw indexMismatch(target, projectDir);
}

function indexMismatch(target: string, projectDir: string): Error {
  return new Error(
    `${relative(projectDir, target)} does not match its key index ${basename(indexPath(target))} (the file was ` +
      'edited, or a run was interrupted between writing the two). Delete both files and run the sync with --full-resync.',
  );
}
