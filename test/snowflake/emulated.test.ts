/**
 * The warehouse conformance suite on the Snowflake adapter, through the real driver, against the
 * wire emulator (DuckDB underneath): emulated, not Snowflake's semantics.
 */
import { SnowflakeEmulator } from './emulator.ts';
import { openEmulated } from './support.ts';
import { describeWarehouse } from '../warehouse-conformance.ts';

describeWarehouse('emulated', async () => {
  // Small chunks, so that stream() reads several chunk URLs.
  const emulator = await SnowflakeEmulator.start({ chunkRows: 700 });
  return { warehouse: await openEmulated(emulator), cleanup: () => emulator.stop() };
});
