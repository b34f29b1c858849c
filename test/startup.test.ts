/**
 * The `ebb` command starts from V8's code cache (bin/ebb.js): a command run a second time reads
 * the cache that its first run wrote, instead of compiling ebb again and writing a new one. A
 * command that opens a warehouse changes a V8 flag (engine/engine.ts); V8 refuses a cache made
 * under other flags, so the launcher must set it before it compiles.
 */
import { describe, expect, it } from 'vitest';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ebbProcess, makeProject } from './support/project.ts';

describe('the code cache of the ebb command', () => {
  it('is read, not written again, by the second `ebb status`, a command that opens the warehouse', async () => {
    const dir = await makeProject({ version: 1, name: 'startup', warehouse: { type: 'duckdb', path: 'warehouse.duckdb' }, connections: {}, syncs: [] });
    // The cache lives in the temporary folder: one of this test's own.
    const temporary = await mkdtemp(join(tmpdir(), 'ebb-test-cache-'));
    try {
      const env = { TMPDIR: temporary };
      const cacheOf = async () => {
        const [folder] = (await readdir(temporary)).filter((name) => name.startsWith('ebb-code-cache-'));
        const files = (await readdir(join(temporary, folder))).filter((name) => name.endsWith('-status.bin'));
        expect(files).toHaveLength(1);
        return stat(join(temporary, folder, files[0]));
      };
      const first = await ebbProcess(dir, ['status'], env);
      expect(first.code, first.stderr).toBe(0);
      const written = await cacheOf();
      const second = await ebbProcess(dir, ['status'], env);
      expect(second.code, second.stderr).toBe(0);
      // A cache written again is a new file (written aside, then renamed over the old one).
      const after = await cacheOf();
      expect(after.ino).toBe(written.ino);
      expect(after.mtimeMs).toBe(written.mtimeMs);
    } finally {
      await rm(temporary, { recursive: true, force: true });
      await rm(dir, { recursive: true, force: true });
    }
  });
});
