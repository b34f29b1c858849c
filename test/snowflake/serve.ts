/**
 * Runs the Snowflake wire emulator as a server, to try ebb's Snowflake path without an account:
 *   npm run emulator -- [--port 8085] [--data-dir DIR] [--init seed.sql] [--chunk-rows 1000] [--latency-ms 100]
 * Point ebb.yml at it with `access_url: http://127.0.0.1:8085` (any account, user and password).
 * `--init` runs a file of Snowflake SQL statements (separated by `;` at the end of a line) into
 * database DB first, e.g. to create the source tables. Ctrl-C stops it and prints the requests
 * it answered. `--latency-ms` adds that much to every request, as a distant account would.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { SnowflakeEmulator } from './emulator.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8085' },
    'data-dir': { type: 'string' },
    init: { type: 'string' },
    'chunk-rows': { type: 'string' },
    'latency-ms': { type: 'string' },
  },
});

const emulator = await SnowflakeEmulator.start({
  port: Number(values.port),
  dataDir: values['data-dir'],
  chunkRows: values['chunk-rows'] ? Number(values['chunk-rows']) : undefined,
  latencyMs: values['latency-ms'] ? Number(values['latency-ms']) : undefined,
});
if (values.init) {
  const script = await readFile(values.init, 'utf8');
  for (const statement of script.split(/;\s*\n/).map((s) => s.trim()).filter(Boolean)) await emulator.sql(statement.replace(/;$/, ''));
}
process.stdout.write(
  `Snowflake emulator (DuckDB underneath) at ${emulator.url}\n` +
    `ebb.yml:  warehouse: { type: snowflake, account: emulated, username: me, password: any, database: DB, access_url: ${emulator.url} }\n`,
);
const stop = async () => {
  process.stdout.write(`requests answered: ${JSON.stringify(emulator.requests)}\n`);
  await emulator.stop();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
