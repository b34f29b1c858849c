/** End-to-end: a full first run of the bench sync into a JSONL file, in a child process. */
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSourceFile, E2E_MEMORY_LIMIT, makeProject } from './data.ts';
import type { ChildReport } from './e2e-child.ts';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));

/** A finished end-to-end run: the child's report, and the records found in the output file. */
export interface E2eBench extends ChildReport {
  rows: number;
  linesWritten: number;
}

/** Counts the lines of a file without holding it. */
async function countLines(path: string): Promise<number> {
  let n = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) n++;
  }
  return n;
}

function runChild(dir: string): Promise<ChildReport> {
  const args = ['--expose-gc', join(repoRoot, 'bin', 'run-ts.js'), join(repoRoot, 'bench', 'e2e-child.ts'), dir];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`the bench child failed: ${error.message}\n${stderr}`));
      const last = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as ChildReport);
      } catch {
        reject(new Error(`the bench child printed no report:\n${stdout}\n${stderr}`));
      }
    });
  });
}

/** Generates a source of `rows` rows in a fresh project and runs its first sync in a child process. */
export async function benchE2e(rows: number, log: (line: string) => void = () => {}): Promise<E2eBench> {
  const project = await makeProject(`e2e-${rows}`, E2E_MEMORY_LIMIT);
  try {
    log(`end-to-end: generating ${rows} source rows`);
    await createSourceFile(project.warehouse, rows);
    log(`end-to-end: first run of ${rows} records into out/contacts.jsonl (child process)`);
    const report = await runChild(project.dir);
    if (report.error || report.succeeded !== rows) {
      throw new Error(`the run did not send every record: ${report.succeeded} of ${rows} succeeded; error: ${report.error ?? 'none'}`);
    }
    const linesWritten = await countLines(join(project.dir, 'out', 'contacts.jsonl'));
    if (linesWritten !== rows) throw new Error(`out/contacts.jsonl holds ${linesWritten} lines, expected ${rows}`);
    return { ...report, rows, linesWritten };
  } finally {
    await project.remove();
  }
}
