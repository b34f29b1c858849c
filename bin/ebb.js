#!/usr/bin/env node
// Entry point of the `ebb` command: runs the TypeScript sources through tsx, so a clone works without a build step.
import { register } from 'tsx/esm/api';

register();
await import('../engine/cli/main.ts');
