/** The warehouse conformance suite on DuckDB (in memory). */
import { tmpdir } from 'node:os';
import { DuckdbWarehouse } from '../engine/warehouse/duckdb.ts';
import { describeWarehouse } from './warehouse-conformance.ts';

describeWarehouse('duckdb', async () => ({ warehouse: await DuckdbWarehouse.open({ path: ':memory:' }, tmpdir()) }));
