/**
 * `npm run pack-check`: ebb as its users get it. Packs this repository (`npm pack`, which builds
 * it), installs the package into an empty folder, then runs `npx ebb init demo` and, in demo/,
 * `npx ebb run --all` with the demo CRM listening (scripts/demo-crm.ts), and checks that every
 * sync ended HEALTHY and that the CRM holds every customer. Exits 1, saying which step failed.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCrm } from './demo-crm.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';

/** Runs a command, its output shown; resolves with its stdout, throws on a non-zero exit. */
function sh(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  process.stdout.write(`$ ${command} ${args.join(' ')}   (in ${cwd})\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      process.stdout.write(chunk);
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`\`${command} ${args.join(' ')}\` exited with ${code}`))));
  });
}

const dir = await mkdtemp(join(tmpdir(), 'ebb-pack-'));
const crm = await startCrm({ token: 'pack-check' });
try {
  await sh(npm, ['pack', '--pack-destination', dir], repo);
  const [tarball] = (await readdir(dir)).filter((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error(`npm pack wrote no .tgz into ${dir}`);
  await writeFile(join(dir, 'package.json'), '{ "private": true }\n');
  await sh(npm, ['install', '--no-audit', '--no-fund', `./${tarball}`], dir);
  await sh(npx, ['ebb', 'init', 'demo'], dir);
  const out = await sh(npx, ['ebb', 'run', '--all', '--json'], join(dir, 'demo'), { CRM_PORT: String(crm.port), CRM_TOKEN: 'pack-check' });
  const runs = (JSON.parse(out) as { runs: { sync: string; health: string; counts: { succeeded: number } }[] }).runs;
  const unhealthy = runs.filter((r) => r.health !== 'HEALTHY');
  if (runs.length === 0 || unhealthy.length > 0) throw new Error(`\`ebb run --all\` ended with runs that are not HEALTHY: ${JSON.stringify(unhealthy.length ? unhealthy : runs)}`);
  const sent = runs.find((r) => r.sync === 'customers_to_crm')?.counts.succeeded;
  if (!sent || sent !== crm.contacts.size) throw new Error(`customers_to_crm says it delivered ${sent} records; the demo CRM holds ${crm.contacts.size}`);
  process.stdout.write(`pack-check: the packed ebb installs, scaffolds a project and runs its ${runs.length} syncs HEALTHY; the CRM holds ${crm.contacts.size} contacts\n`);
} catch (e) {
  process.stderr.write(`pack-check FAILED: ${(e as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await crm.close();
  await rm(dir, { recursive: true, force: true });
}
