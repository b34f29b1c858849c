#!/usr/bin/env node
// Runs a TypeScript file of this repository (bench, scripts) through tsx: `node bin/run-ts.js FILE [args]`.
import { register } from 'tsx/esm/api';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

register();
const file = process.argv[2];
process.argv.splice(1, 1);
await import(pathToFileURL(resolve(file)).href);
