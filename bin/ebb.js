#!/usr/bin/env node
// Entry point of the `ebb` command: runs the compiled script dist/ebb.cjs (`npm run build`, which
// `npm install` runs in a clone). With EBB_DEBUG=1, Node loads the script itself, and stack traces
// point into the TypeScript sources.
//
// Otherwise V8 keeps the code it compiled for the script in a cache file per command, which the next run of
// that command reads instead of compiling the script again (what Node 22's module.enableCompileCache
// does for modules). The cache lives in a folder of the user's own, in the temporary folder; its
// name holds the script's hash, so that another build never reads it. Without a cache, or when V8
// refuses it (another Node.js), the command compiles as usual and writes one as it exits.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import vm from 'node:vm';

// The heap growth that openEngine bounds (engine/engine.ts), set before the script is compiled:
// V8 refuses a cache made under other flags, and set only later, it made every command that opens
// a warehouse compile the script again and rewrite its cache (150 ms of `ebb status`).
setFlagsFromString('--heap-growing-percent=100');

const scriptUrl = new URL('../dist/ebb.cjs', import.meta.url);
const file = fileURLToPath(scriptUrl);
let source;
let hash;
try {
  // ASCII (the build checks it): read as Latin-1, which copies bytes instead of decoding them.
  source = readFileSync(file, 'latin1');
  hash = readFileSync(`${file}.sha`, 'utf8').trim();
} catch {
  process.stderr.write('error: ebb is not built: run `npm run build` in its folder\n');
  process.exit(1);
}

const command = process.argv.slice(2).find((a) => !a.startsWith('-')) ?? process.argv[2] ?? '';
const cacheDir = join(tmpdir(), `ebb-code-cache-${process.getuid?.() ?? 'user'}`);
const cacheFile = join(cacheDir, `${hash}-${process.version}-${/^-{0,2}[a-z]{1,20}$/i.test(command) ? command : 'other'}.bin`);

/** The cache, if there is one and the folder is this user's alone (nobody else could have written it). */
function readCache() {
  try {
    const dir = statSync(cacheDir);
    if (process.getuid && (dir.uid !== process.getuid() || (dir.mode & 0o022) !== 0)) return undefined;
    return readFileSync(cacheFile);
  } catch {
    return undefined;
  }
}

/** Writes the code V8 compiled in this run; a cache of another build that nobody used for a day goes. */
function writeCache(script) {
  try {
    mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
    const temporary = `${cacheFile}.${process.pid}`;
    writeFileSync(temporary, script.createCachedData());
    renameSync(temporary, cacheFile);
    for (const name of readdirSync(cacheDir)) {
      const path = join(cacheDir, name);
      if (!name.startsWith(hash) && Date.now() - statSync(path).mtimeMs > 86_400_000) rmSync(path, { force: true });
    }
  } catch {
    // No cache: the next run compiles again.
  }
}

/**
 * The script's function, compiled with the cache (a CommonJS module, as Node would wrap it). Its
 * imports of modules outside it go through the import() passed to it below (engine/import-module.ts).
 */
function compile() {
  const cachedData = readCache();
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData });
  if (cachedData === undefined || script.cachedDataRejected) process.once('exit', () => writeCache(script));
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, fileURLToPath(new URL('.', scriptUrl)));
  return module.exports;
}

let ebb;
if (process.env.EBB_DEBUG) {
  process.setSourceMapsEnabled(true);
  ebb = createRequire(import.meta.url)(file);
} else {
  ebb = compile();
}
ebb(scriptUrl.href, (specifier) => import.meta.resolve(specifier), (specifier) => import(specifier));
