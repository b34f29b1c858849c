import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import filePlugin from '../../plugins/file/index.ts';
import type { Action, Change, Outcome, Session, Strategy } from '../../plugins/plugin.ts';
import { pluginContext, sessionContext } from '../support/plugin-context.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ebb-file-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const fields = ['email', 'name', 'score'];

function open(object: string, strategy: Strategy, fieldList = fields): Promise<Session> {
  return filePlugin.open(
    sessionContext(filePlugin, {
      config: { directory: 'out' },
      projectDir: dir,
      destination: { connection: 'files', object },
      strategy,
      fields: fieldList,
    }),
  );
}

/** Applies one batch of changes of one action; records are given by key. */
function apply(session: Session, action: Action, records: Record<string, Record<string, unknown>>, appIds: Record<string, string> = {}): Promise<Outcome[]> {
  const changes: Change[] = Object.entries(records).map(([key, record]) => ({ key, action, record, appId: appIds[key] }));
  return session.apply(changes);
}

const read = (name: string) => readFile(join(dir, 'out', name), 'utf8');
/** The keys of the sidecar index, without its header. */
const indexKeys = async (name: string) => (await read(`${name}.keys`)).split('\n').slice(1, -1).map((l) => JSON.parse(l) as string);

const ann = { email: 'ann@x.io', name: 'Ann', score: 1 };
const bob = { email: 'bob@x.io', name: 'Bob', score: 2 };
const cyd = { email: 'cyd@x.io', name: 'Cyd', score: 3 };
const dan = { email: 'dan@x.io', name: 'Dan', score: 4 };

describe('file plugin: schemas and check', () => {
  it('defaults the directory and rejects unknown config keys', () => {
    expect(filePlugin.configSchema.parse({})).toEqual({ directory: './out' });
    expect(filePlugin.configSchema.safeParse({ dir: 'x' }).success).toBe(false);
  });

  it('accepts .jsonl and .csv objects only, and no directories', () => {
    const schema = filePlugin.destinationSchema!;
    expect(schema.safeParse({ connection: 'f', object: 'a.jsonl' }).success).toBe(true);
    expect(schema.safeParse({ connection: 'f', object: 'a.csv' }).success).toBe(true);
    const txt = schema.safeParse({ connection: 'f', object: 'a.txt' });
    expect(txt.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual(['object: must end in .jsonl or .csv']);
    const nested = schema.safeParse({ connection: 'f', object: '../a.csv' });
    expect(nested.error?.issues[0].message).toMatch(/must be a file name, without a directory/);
  });

  it('check creates the directory, and says when it cannot write', async () => {
    const ctx = pluginContext(filePlugin, { config: { directory: 'deep/out' }, projectDir: dir });
    await filePlugin.check(ctx);
    expect(await readdir(join(dir, 'deep/out'))).toEqual([]); // the probe file is gone
    await writeFile(join(dir, 'blocker'), '');
    const blocked = pluginContext(filePlugin, { config: { directory: 'blocker/out' }, projectDir: dir });
    await expect(filePlugin.check(blocked)).rejects.toThrow(/cannot write to directory .*blocker/);
  });

  it('declares an atomic run', () => {
    expect(filePlugin.capabilities).toEqual({ atomicRun: true });
  });
});

describe('file plugin: JSONL', () => {
  it('creates, then updates, clears and deletes across two runs', async () => {
    const first = await open('people.jsonl', 'upsert');
    const created = await apply(first, 'create', { a: ann, b: bob, c: cyd });
    expect(created).toEqual([
      { key: 'a', success: true, appId: 'a' },
      { key: 'b', success: true, appId: 'b' },
      { key: 'c', success: true, appId: 'c' },
    ]);
    await first.close(true);
    expect(await read('people.jsonl')).toBe(
      '{"email":"ann@x.io","name":"Ann","score":1}\n' +
        '{"email":"bob@x.io","name":"Bob","score":2}\n' +
        '{"email":"cyd@x.io","name":"Cyd","score":3}\n',
    );
    expect(await indexKeys('people.jsonl')).toEqual(['a', 'b', 'c']);

    const second = await open('people.jsonl', 'upsert');
    expect(await apply(second, 'update', { b: { ...bob, score: 20 } }, { b: 'b' })).toEqual([{ key: 'b', success: true, appId: 'b' }]);
    expect(await apply(second, 'clear', { a: ann }, { a: 'a' })).toEqual([{ key: 'a', success: true, appId: 'a' }]);
    expect(await apply(second, 'delete', { c: cyd }, { c: 'c' })).toEqual([{ key: 'c', success: true, appId: 'c' }]);
    expect(await apply(second, 'create', { d: dan })).toEqual([{ key: 'd', success: true, appId: 'd' }]);
    await second.close(true);
    expect(await read('people.jsonl')).toBe(
      '{"email":null,"name":null,"score":null}\n' +
        '{"email":"bob@x.io","name":"Bob","score":20}\n' +
        '{"email":"dan@x.io","name":"Dan","score":4}\n',
    );
    expect(await indexKeys('people.jsonl')).toEqual(['a', 'b', 'd']);
    // Only the data file and its index: every temp file is gone.
    expect((await readdir(join(dir, 'out'))).sort()).toEqual(['people.jsonl', 'people.jsonl.keys']);
  });

  it('answers not_found for unknown keys and conflict for keys the file holds', async () => {
    const first = await open('people.jsonl', 'mirror');
    await apply(first, 'create', { a: ann });
    await first.close(true);

    const second = await open('people.jsonl', 'mirror');
    const [update] = await apply(second, 'update', { zz: bob });
    expect(update).toMatchObject({ key: 'zz', success: false, error: { kind: 'not_found', message: 'people.jsonl holds no record with key zz' } });
    const [del] = await apply(second, 'delete', { zz: bob });
    expect(del.error?.kind).toBe('not_found');
    const [create] = await apply(second, 'create', { a: ann });
    expect(create).toMatchObject({ key: 'a', success: false, error: { kind: 'conflict', existingAppId: 'a' } });
    // The engine's business retry: the conflict becomes an update of the existing id.
    expect(await apply(second, 'update', { a: { ...ann, score: 9 } }, { a: 'a' })).toEqual([{ key: 'a', success: true, appId: 'a' }]);
    // A deleted key is gone for the rest of the run.
    await apply(second, 'delete', { a: ann }, { a: 'a' });
    expect((await apply(second, 'update', { a: ann }, { a: 'a' }))[0].error?.kind).toBe('not_found');
    await second.close(true);
    expect(await read('people.jsonl')).toBe('');
    expect(await indexKeys('people.jsonl')).toEqual([]);
  });

  it('answers not_found for an update when the file does not exist yet', async () => {
    const session = await open('people.jsonl', 'update');
    expect((await apply(session, 'update', { a: ann }))[0].error?.kind).toBe('not_found');
    await session.close(true);
  });

  it('replace overwrites the file with exactly the records of the run', async () => {
    const first = await open('people.jsonl', 'upsert');
    await apply(first, 'create', { a: ann, b: bob });
    await first.close(true);

    const second = await open('people.jsonl', 'replace');
    expect(await apply(second, 'recreate', { c: cyd, a: ann })).toEqual([
      { key: 'c', success: true, appId: 'c' },
      { key: 'a', success: true, appId: 'a' },
    ]);
    await second.close(true);
    expect(await read('people.jsonl')).toBe('{"email":"cyd@x.io","name":"Cyd","score":3}\n{"email":"ann@x.io","name":"Ann","score":1}\n');
    expect(await indexKeys('people.jsonl')).toEqual(['c', 'a']);

    // A replace run that sends nothing leaves an empty file.
    const third = await open('people.jsonl', 'replace');
    await third.close(true);
    expect(await read('people.jsonl')).toBe('');
  });

  it('send appends every event, the same key as often as it comes', async () => {
    for (const score of [1, 2]) {
      const session = await open('events.jsonl', 'send');
      expect(await apply(session, 'send', { a: { ...ann, score } })).toEqual([{ key: 'a', success: true, appId: 'a' }]);
      await session.close(true);
    }
    expect(await read('events.jsonl')).toBe('{"email":"ann@x.io","name":"Ann","score":1}\n{"email":"ann@x.io","name":"Ann","score":2}\n');
    expect(await indexKeys('events.jsonl')).toEqual(['a', 'a']);
  });

  it('writes bigints (with every digit, as JSON numbers) and nested values as JSON', async () => {
    const session = await open('values.jsonl', 'create', ['id', 'tags']);
    await apply(session, 'create', { k: { id: 12n, tags: ['x', { y: 1 }] }, big: { id: 2n ** 64n, tags: null } });
    await session.close(true);
    expect(await read('values.jsonl')).toBe('{"id":12,"tags":["x",{"y":1}]}\n{"id":18446744073709551616,"tags":null}\n');
  });
});

describe('file plugin: CSV', () => {
  it('writes a header and RFC 4180 fields, then edits rows across runs', async () => {
    const tricky = { email: 'q@x.io', name: 'say "hi", then\nleave', score: null };
    const empty = { email: 'e@x.io', name: '', score: 0 };
    const first = await open('people.csv', 'upsert');
    await apply(first, 'create', { a: ann, q: tricky, e: empty });
    await first.close(true);
    const header = 'email,name,score\n';
    const trickyRow = 'q@x.io,"say ""hi"", then\nleave",\n';
    expect(await read('people.csv')).toBe(header + 'ann@x.io,Ann,1\n' + trickyRow + 'e@x.io,"",0\n');
    expect(await indexKeys('people.csv')).toEqual(['a', 'q', 'e']);

    // The multi-line row must be read back as one record to keep keys and rows paired.
    const second = await open('people.csv', 'upsert');
    await apply(second, 'update', { e: { ...empty, name: 'Eve' } }, { e: 'e' });
    await apply(second, 'clear', { a: ann }, { a: 'a' });
    await apply(second, 'create', { b: bob });
    await second.close(true);
    expect(await read('people.csv')).toBe(header + ',,\n' + trickyRow + 'e@x.io,Eve,0\n' + 'bob@x.io,Bob,2\n');
    expect(await indexKeys('people.csv')).toEqual(['a', 'q', 'e', 'b']);

    const third = await open('people.csv', 'upsert');
    await apply(third, 'delete', { q: tricky }, { q: 'q' });
    await third.close(true);
    expect(await read('people.csv')).toBe(header + ',,\n' + 'e@x.io,Eve,0\n' + 'bob@x.io,Bob,2\n');
  });

  it('rewrites kept rows under a new header when the mapping changed', async () => {
    const first = await open('people.csv', 'upsert');
    await apply(first, 'create', { a: ann, b: { ...bob, name: 'Bob, Jr.' } });
    await first.close(true);

    const second = await open('people.csv', 'upsert', ['score', 'email', 'tier']);
    await apply(second, 'update', { a: { score: 5, email: 'ann@x.io', tier: 'gold' } }, { a: 'a' });
    await second.close(true);
    expect(await read('people.csv')).toBe('score,email,tier\n5,ann@x.io,gold\n2,bob@x.io,\n');
  });

  it('writes a header-only file for an empty first run', async () => {
    const session = await open('people.csv', 'replace');
    await session.close(true);
    expect(await read('people.csv')).toBe('email,name,score\n');
  });
});

describe('file plugin: atomic runs', () => {
  it('changes nothing before close, and nothing at all when the run is rolled back', async () => {
    const first = await open('people.jsonl', 'upsert');
    await apply(first, 'create', { a: ann, b: bob });
    await first.close(true);
    const before = await read('people.jsonl');
    const beforeIndex = await read('people.jsonl.keys');

    const second = await open('people.jsonl', 'upsert');
    await apply(second, 'update', { a: { ...ann, score: 100 } }, { a: 'a' });
    await apply(second, 'delete', { b: bob }, { b: 'b' });
    await apply(second, 'create', { c: cyd });
    expect(await read('people.jsonl')).toBe(before);
    await second.close(false);
    expect(await read('people.jsonl')).toBe(before);
    expect(await read('people.jsonl.keys')).toBe(beforeIndex);
    expect((await readdir(join(dir, 'out'))).sort()).toEqual(['people.jsonl', 'people.jsonl.keys']);
    await second.close(true); // a second close is a no-op
    expect(await read('people.jsonl')).toBe(before);
  });

  it('a rolled-back first run leaves no file behind', async () => {
    const session = await open('people.csv', 'create');
    await apply(session, 'create', { a: ann });
    await session.close(false);
    expect(await readdir(join(dir, 'out'))).toEqual([]);
  });

  it('refuses a file edited by hand, or one without its index', async () => {
    const first = await open('people.jsonl', 'upsert');
    await apply(first, 'create', { a: ann, b: bob });
    await first.close(true);
    await writeFile(join(dir, 'out/people.jsonl'), '{"email":"ann@x.io","name":"Ann","score":1}\n');
    await expect(open('people.jsonl', 'upsert')).rejects.toThrow(
      'out/people.jsonl does not match its key index people.jsonl.keys (the file was edited, or a run was interrupted',
    );
    await rm(join(dir, 'out/people.jsonl.keys'));
    await expect(open('people.jsonl', 'upsert')).rejects.toThrow(/has no valid key index people\.jsonl\.keys/);
    // replace does not read the file, so it recovers from both.
    const replace = await open('people.jsonl', 'replace');
    await apply(replace, 'recreate', { b: bob });
    await replace.close(true);
    expect(await read('people.jsonl')).toBe('{"email":"bob@x.io","name":"Bob","score":2}\n');
  });

  it('streams a large first run and an incremental run over it', async () => {
    const n = 50_000;
    const row = (i: number) => ({ email: `u${i}@x.io`, name: `User ${i}`, score: i });
    const first = await open('big.csv', 'upsert');
    for (let start = 0; start < n; start += 1000) {
      const batch: Record<string, Record<string, unknown>> = {};
      for (let i = start; i < start + 1000; i++) batch[`k${i}`] = row(i);
      await apply(first, 'create', batch);
    }
    await first.close(true);
    const second = await open('big.csv', 'upsert');
    await apply(second, 'update', { k7: { ...row(7), score: -7 } }, { k7: 'k7' });
    await apply(second, 'delete', { k8: row(8) }, { k8: 'k8' });
    await second.close(true);
    const lines = (await read('big.csv')).split('\n');
    expect(lines).toHaveLength(n + 1); // header + n - 1 rows + the final empty string
    expect(lines.slice(0, 10)).toEqual(['email,name,score', ...[0, 1, 2, 3, 4, 5, 6].map((i) => `u${i}@x.io,User ${i},${i}`), 'u7@x.io,User 7,-7', 'u9@x.io,User 9,9']);
    expect(lines[n - 1]).toBe(`u${n - 1}@x.io,User ${n - 1},${n - 1}`);
  });
});
