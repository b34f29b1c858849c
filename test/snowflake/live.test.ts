/**
 * The warehouse conformance suite against a real Snowflake account. It runs only when the account
 * and its secrets are in the environment, and is skipped with the reason printed otherwise:
 *   SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_PATH
 *   (SNOWFLAKE_PRIVATE_KEY_PASSPHRASE for an encrypted key), SNOWFLAKE_DATABASE, and optionally
 *   SNOWFLAKE_WAREHOUSE and SNOWFLAKE_ROLE.
 * It creates a schema ebb_conf_<random> in that database and drops it at the end.
 */
import { tmpdir } from 'node:os';
import { describe, it } from 'vitest';
import './support.ts';
import { SnowflakeWarehouse } from '../../engine/warehouse/snowflake.ts';
import { describeWarehouse } from '../warehouse-conformance.ts';

const env = process.env;
const missing = [
  !env.SNOWFLAKE_ACCOUNT && 'SNOWFLAKE_ACCOUNT',
  !env.SNOWFLAKE_USER && 'SNOWFLAKE_USER',
  !env.SNOWFLAKE_PASSWORD && !env.SNOWFLAKE_PRIVATE_KEY_PATH && 'SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_PATH',
  !env.SNOWFLAKE_DATABASE && 'SNOWFLAKE_DATABASE',
].filter((m): m is string => Boolean(m));

if (missing.length > 0) {
  const reason = `live Snowflake suite skipped: set ${missing.join(', ')} to run it against a real account`;
  process.stderr.write(`${reason}\n`);
  describe('warehouse conformance: live Snowflake', () => {
    it.skip(reason, () => undefined);
  });
} else {
  describeWarehouse('live Snowflake', async () => ({
    warehouse: await SnowflakeWarehouse.open(
      {
        type: 'snowflake',
        account: env.SNOWFLAKE_ACCOUNT!,
        username: env.SNOWFLAKE_USER!,
        password: env.SNOWFLAKE_PASSWORD,
        private_key_path: env.SNOWFLAKE_PRIVATE_KEY_PATH,
        private_key_passphrase: env.SNOWFLAKE_PRIVATE_KEY_PASSPHRASE,
        database: env.SNOWFLAKE_DATABASE!,
        warehouse: env.SNOWFLAKE_WAREHOUSE,
        role: env.SNOWFLAKE_ROLE,
        state_schema: 'ebb',
      },
      tmpdir(),
    ),
  }));
}
