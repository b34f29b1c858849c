#!/usr/bin/env node
// Entry point of the `ebb` command: runs the compiled JavaScript in dist/ (`npm run build`, which
// `npm install` runs in a clone). With EBB_DEBUG=1, stack traces point into the TypeScript sources.
import { existsSync } from 'node:fs';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('error: ebb is not built: run `npm run build` in its folder\n');
  process.exit(1);
}
if (process.env.EBB_DEBUG) process.setSourceMapsEnabled(true);
await import(main.href);
