// `npm run build`: compiles the engine, its built-in plugins and the dependencies that most
// commands load into one CommonJS script, dist/ebb.cjs, that `bin/ebb.js` runs (`npm install`
// runs it in a clone, as `prepare`; the tests run it before they start).
//
// One script, because what a command costs to start is mostly loading modules: resolving, reading
// and compiling some 400 files of zod, yaml, DuckDB's API and the rest took more than the command
// itself. In one script a command's modules still load only when it imports them (esbuild wraps
// each module in a function that runs on its first import), and `bin/ebb.js` keeps V8's compiled
// code of the script between runs. The dependencies that only some commands need (the server, the
// apps' clients, Snowflake, Redis) and DuckDB's native binding stay in node_modules.
//
// The output is one flat folder: engine/paths.ts relies on it to find sql/, templates/ and ui/ from
// the sources and from dist/ alike.
import { build } from 'esbuild';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';

/**
 * The dependencies compiled into dist/ebb.cjs: those that `ebb status`, `plan` and `run` load, and
 * the server's, which extends ebb's zod schemas with OpenAPI metadata and so must use the same zod.
 */
const bundled = ['@duckdb/node-api', 'cli-progress', 'commander', 'croner', 'fastest-levenshtein', 'lossless-json', 'nunjucks', 'p-limit', 'p-map', 'yaml', 'zod'];
const server = ['@hono/node-server', '@hono/zod-openapi', 'hono'];

const root = fileURLToPath(new URL('..', import.meta.url));
const { dependencies } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
const outfile = 'dist/ebb.cjs';
await build({
  absWorkingDir: root,
  entryPoints: ['engine/cli/main.ts'],
  outfile,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // `chokidar` is nunjucks' optional file watcher, which ebb does not use.
  external: [...Object.keys(dependencies).filter((d) => !bundled.includes(d) && !server.includes(d)), '@duckdb/node-bindings', 'chokidar'],
  // A CommonJS script has no import.meta: the script exports one function, to which bin/ebb.js
  // passes the script's URL, its own resolver and its own import() (all resolve from the package's
  // folder; see engine/import-module.ts).
  define: { 'import.meta.url': '__ebbUrl', 'import.meta.resolve': '__ebbResolve' },
  banner: { js: 'module.exports = function ebb(__ebbUrl, __ebbResolve, __ebbImport) {' },
  footer: { js: '};' },
  // No comments nor indentation: a smaller script to read at every start. EBB_DEBUG=1 maps stack
  // traces back to the TypeScript sources.
  minifyWhitespace: true,
  sourcemap: true,
  logLevel: 'warning',
});
// The key of V8's code cache (bin/ebb.js): it must change whenever the script does. Computed here,
// not at every start. esbuild writes non-ASCII characters of strings as escapes, and comments are
// gone: the script is ASCII, which V8 holds in one byte per character.
const script = await readFile(new URL(`../${outfile}`, import.meta.url), 'utf8');
if (/[\u0080-\uffff]/.test(script)) throw new Error(`${outfile} is not ASCII`);
// A script compiled from the cache cannot import() (engine/import-module.ts): only importModule may.
if (script.match(/[^\w$.]import\(/g)?.length !== 1) throw new Error(`${outfile}: an import() of a module outside ebb must use importModule (engine/import-module.ts)`);
await writeFile(new URL(`../${outfile}.sha`, import.meta.url), createHash('sha256').update(script).digest('hex').slice(0, 20));
// The files of an earlier build go once this one is written, not before: dist/ never lacks its
// entry point, should another build or a test run use the same folder meanwhile.
const written = new Set(['ebb.cjs', 'ebb.cjs.map', 'ebb.cjs.sha']);
for (const file of await readdir(new URL('../dist/', import.meta.url))) {
  if (!written.has(file)) await rm(new URL(`../dist/${file}`, import.meta.url), { force: true });
}
