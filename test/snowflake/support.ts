/** Shared set-up of the Snowflake tests: a quiet driver, and an adapter connected to an emulator. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SnowflakeConfig } from '../../engine/config/schema.ts';
import { SnowflakeWarehouse } from '../../engine/warehouse/snowflake.ts';
import type { SnowflakeEmulator } from './emulator.ts';

// The driver keeps an OCSP response cache; in tests it goes to a temporary directory.
process.env.SF_OCSP_RESPONSE_CACHE_DIR ??= mkdtempSync(join(tmpdir(), 'ebb-sf-ocsp-'));

/** DDL: anything that creates, changes or drops an object, or its grants (ALTER SESSION is not). */
export const DDL = /^\s*(CREATE|ALTER\s+(?!SESSION\b)|DROP|GRANT|REVOKE|TRUNCATE|UNDROP|COMMENT)\b/i;
/** DML: anything that writes rows. */
export const DML = /^\s*(INSERT|UPDATE|DELETE|MERGE|COPY)\b/i;

/** The `warehouse:` block of an ebb.yml that points at an emulator. */
export function emulatedConfig(emulator: SnowflakeEmulator, extra: Partial<SnowflakeConfig> = {}): SnowflakeConfig {
  return { type: 'snowflake', account: 'emulated', username: 'ebb_user', password: 'secret', database: 'DB', state_schema: 'ebb', access_url: emulator.url, ...extra };
}

/** The Snowflake adapter, connected to an emulator. */
export function openEmulated(emulator: SnowflakeEmulator, extra: Partial<SnowflakeConfig> = {}): Promise<SnowflakeWarehouse> {
  return SnowflakeWarehouse.open(emulatedConfig(emulator, extra), tmpdir());
}
