// `npm run build`: compiles the engine and its built-in plugins to dist/, the JavaScript that
// `bin/ebb.js` runs (`npm install` runs it in a clone, as `prepare`; the tests run it before they
// start). One bundle split at each dynamic import, so that a command loads only the modules it
// uses; dependencies stay in node_modules. The output is one flat folder: engine/paths.ts relies on
// it to find sql/, templates/ and ui/ from the sources and from dist/ alike.
import { build } from 'esbuild';
import { readdir, rm } from 'node:fs/promises';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const result = await build({
  absWorkingDir: root,
  entryPoints: ['engine/cli/main.ts'],
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
});
// The files of an earlier build go once this one is written, not before: dist/ never lacks its
// entry point, should another build or a test run use the same folder meanwhile.
const written = new Set(Object.keys(result.metafile.outputs).map((f) => basename(f)));
for (const file of await readdir(new URL('../dist/', import.meta.url))) {
  if (!written.has(file)) await rm(new URL(`../dist/${file}`, import.meta.url), { force: true });
}
