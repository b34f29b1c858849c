/** Vitest's global setup: compiles ebb (`npm run build`), so that the `ebb` some tests spawn runs the code under test. */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  execFileSync(process.execPath, [fileURLToPath(new URL('../../scripts/build.js', import.meta.url))], { stdio: 'inherit' });
}
