import { loadProject } from '../engine/config/load.ts';
import { openEngine } from '../engine/engine.ts';
import { deploySyncs } from '../engine/catalog/deploy.ts';
import { runSync } from '../engine/run.ts';
import { SYNC } from './data.ts';
const engine = await openEngine(await loadProject(process.argv[2]));
const sync = engine.project.config.syncs.find((s) => s.name === SYNC)!;
await deploySyncs(engine);
const wh = engine.sql.warehouse as any;
let phase = 'plan';
const orig = wh.run.bind(wh);
let n = 0;
wh.run = async (sql: string, p?: unknown[]) => {
  if (phase === 'record' && /INSERT INTO "ebb"."sync_record_history"|MERGE INTO/.test(sql)) {
    await orig("PRAGMA enable_profiling='json'"); await orig(`SET profiling_output='/tmp/rec-prof-${n++}.json'`);
    const r = await orig(sql, p); await orig('PRAGMA disable_profiling'); return r;
  }
  return orig(sql, p);
};
await runSync(engine, sync, { onPhase: (p) => { phase = p; } });
await engine.close();
