/**
 * Alerting around runs: lifecycle events when a run starts and ends, the alert rules after each
 * run (and `no_success` between runs), and a notification only when a (sync, rule) changes state,
 * OK → FIRING or FIRING → OK. States live in `sync_alerts`, every notification in
 * `alert_notifications`. Nothing here throws into a run: a channel or a warehouse that fails is
 * written down (or, failing that, warned about on stderr).
 */
import { randomUUID } from 'node:crypto';
import type { Engine } from '../engine.ts';
import type { SyncConfig } from '../config/schema.ts';
import type { AlertEvent, AlertRules, ChannelConfig } from '../config/alerts.ts';
import type { RunResult } from '../run.ts';
import type { Row } from '../warehouse/warehouse.ts';
import { redact } from '../redact.ts';
import { deliver, eventsOf, type EventPayload } from './channels.ts';
import { evaluateRules, noSuccessVerdict, runsNeeded, type RunFacts, type Verdict } from './rules.ts';
import { sourceContext } from '../plan/plan.ts';
import { timestampMs as ms } from '../warehouse/timestamp.ts';
import { effectiveSync, readCatalog, type CatalogEntry } from '../catalog/catalog.ts';

/** How often the scheduler and the worker evaluate `no_success` between runs, at most. */
export const STALE_CHECK_MS = 10_000;

/** The rules of a sync: the project's, each one replaced by the sync's own where it has one. */
export function rulesOf(engine: Engine, sync: SyncConfig): AlertRules {
  return { ...engine.project.config.alerts.rules, ...sync.alerts?.rules };
}

/** The channels that hear about a sync for an event, by name. */
function channelsFor(engine: Engine, sync: SyncConfig | null, event: AlertEvent | 'test'): Array<[string, ChannelConfig]> {
  const { channels, notify } = engine.project.config.alerts;
  // A test (no sync) goes to every channel.
  const names = sync ? (sync.alerts?.notify ?? notify ?? Object.keys(channels)) : Object.keys(channels);
  return names.flatMap((name) => {
    const channel = channels[name];
    return channel && (event === 'test' || eventsOf(channel).includes(event)) ? [[name, channel] as [string, ChannelConfig]] : [];
  });
}

/** The link to a run in `ebb serve`'s Sync Manager, when `server.public_url` is set. */
export function runUrl(engine: Engine, sync: string, runId: string | null): string | null {
  const base = engine.project.config.server?.public_url;
  if (!base) return null;
  return `${base.replace(/\/+$/, '')}/#/syncs/${encodeURIComponent(sync)}${runId ? `/runs/${encodeURIComponent(runId)}` : ''}`;
}

function warn(message: string): void {
  process.stderr.write(`warning: ${redact(message)}\n`);
}

type PayloadFields = Partial<Omit<EventPayload, 'id' | 'event' | 'occurred_at' | 'project' | 'sync'>>;

/** Sends an event to the channels that take it, and writes each delivery to `alert_notifications`. */
async function notify(engine: Engine, sync: SyncConfig | null, syncName: string, event: AlertEvent | 'test', fields: PayloadFields, only?: string): Promise<Array<{ channel: string; success: boolean; error: string | null }>> {
  const targets = channelsFor(engine, sync, event).filter(([name]) => only === undefined || name === only);
  const payload: EventPayload = {
    id: randomUUID(),
    event,
    occurred_at: new Date().toISOString(),
    project: engine.project.config.name,
    sync: syncName,
    run_id: null,
    trigger: null,
    status: null,
    planned: null,
    counts: null,
    duration_ms: null,
    error: null,
    alert: null,
    ...fields,
    url: runUrl(engine, syncName, fields.run_id ?? null),
  };
  return Promise.all(
    targets.map(async ([name, channel]) => {
      // Each channel's copy has its own id: a receiver de-duplicates retries, not channels.
      const copy = { ...payload, id: `${payload.id}-${name}` };
      const delivery = await deliver(channel, copy);
      try {
        await engine.sql.run('alert_notification_insert', {
          notification_id: copy.id,
          event,
          sync_name: syncName,
          rule: payload.alert?.rule ?? null,
          run_id: payload.run_id,
          channel: name,
          channel_type: channel.type,
          success: delivery.success,
          attempts: delivery.attempts,
          error: delivery.error,
          payload: redact(JSON.stringify(copy)),
        });
      } catch (e) {
        warn(`the notification ${event} of sync ${syncName} to channel ${name} could not be written to alert_notifications: ${(e as Error).message}`);
      }
      if (!delivery.success) warn(`channel ${name} (${channel.type}): ${event} of sync ${syncName} not delivered after ${delivery.attempts} attempts: ${delivery.error}`);
      return { channel: name, success: delivery.success, error: delivery.error };
    }),
  );
}

/** `sync.run.started`; the promise never rejects. Awaited before the run's end event, which it must precede. */
export function runStarted(engine: Engine, sync: SyncConfig, runId: string, trigger: string): Promise<unknown> {
  return notify(engine, sync, sync.name, 'sync.run.started', { run_id: runId, trigger, status: 'RUNNING' }).catch((e: unknown) => warn(String(e)));
}

/** After a run is recorded: its end event, then its alert rules. Never rejects. */
export async function runFinished(engine: Engine, sync: SyncConfig, result: RunResult, trigger: string, started: Promise<unknown>): Promise<void> {
  try {
    await started;
    const run = { run_id: result.run_id, trigger, status: result.health, planned: result.planned, counts: result.counts, duration_ms: result.duration_ms, error: result.error };
    await notify(engine, sync, sync.name, result.health === 'FAILED' ? 'sync.run.failed' : 'sync.run.completed', run);
    const rules = rulesOf(engine, sync);
    if (Object.values(rules).every((r) => !r)) return;
    if (rules.volume && rules.volume.counts.includes('source_rows') && result.health !== 'FAILED') {
      const [{ n }] = await engine.sql.runAndRead('source_count', { ...sourceContext(sync) });
      await engine.sql.run('run_set_source_rows', { run_id: result.run_id, source_rows: Number(n) });
    }
    const verdicts = evaluateRules(rules, await factsOf(engine, sync, rules));
    await settle(engine, sync, verdicts, result.run_id, run, true);
  } catch (e) {
    warn(`sync ${sync.name}: its alerts could not be evaluated after run ${result.run_id}: ${(e as Error).message}`);
  }
}

function runFacts(r: Row): RunFacts {
  const planned = typeof r.planned === 'string' ? (JSON.parse(r.planned) as Record<string, number>) : ((r.planned ?? {}) as Record<string, number>);
  return {
    run_id: String(r.run_id),
    status: String(r.status),
    error: r.error === null ? null : String(r.error),
    started: ms(r.started_at)!,
    finished: ms(r.finished_at)!,
    planned: Object.values(planned).reduce((a, b) => a + Number(b), 0),
    succeeded: Number(r.succeeded ?? 0),
    failed: Number(r.failed ?? 0),
    source_rows: r.source_rows === null || r.source_rows === undefined ? null : Number(r.source_rows),
  };
}

async function factsOf(engine: Engine, sync: SyncConfig, rules: AlertRules) {
  const { sql } = engine;
  const runs = (await sql.runAndRead('alert_runs', { sync_name: sync.name, limit: runsNeeded(rules) })).map(runFacts);
  const [review] = await sql.runAndRead('state_review_count', { sync_name: sync.name });
  const success = (await sql.runAndRead('alert_last_success')).find((r) => r.sync_name === sync.name);
  return { runs, needsReview: Number(review?.n ?? 0), lastSuccessAt: ms(success?.last_success_at), createdAt: ms(success?.created_at), now: Date.now() };
}

/**
 * Writes the verdicts that changed a state and notifies each change. With `complete`, the verdicts
 * are all the rules of the sync: a FIRING rule that is no longer configured goes back to OK, quietly.
 */
async function settle(engine: Engine, sync: SyncConfig, verdicts: Verdict[], runId: string | null, run: PayloadFields, complete: boolean): Promise<void> {
  const { sql } = engine;
  const states = new Map((await sql.runAndRead('alert_states', { sync_name: sync.name })).map((r) => [String(r.rule), String(r.state)]));
  for (const v of verdicts) {
    const state = v.firing ? 'FIRING' : 'OK';
    const before = states.get(v.rule);
    if (before === state) continue;
    await sql.run('alert_state_set', { sync_name: sync.name, rule: v.rule, state, message: redact(v.message), run_id: runId });
    // A first verdict of OK is no news; a first FIRING is.
    if (before === undefined && !v.firing) continue;
    await notify(engine, sync, sync.name, v.firing ? 'sync.alert.firing' : 'sync.alert.resolved', { ...run, run_id: runId, alert: { rule: v.rule, state, message: redact(v.message) } });
  }
  if (!complete) return;
  const ruled = new Set(verdicts.map((v) => v.rule));
  const configured = Object.entries(rulesOf(engine, sync)).filter(([, r]) => r).map(([name]) => name);
  for (const [rule, state] of states) {
    if (state === 'FIRING' && !ruled.has(rule) && !configured.includes(rule.split('.')[0])) {
      await sql.run('alert_state_set', { sync_name: sync.name, rule, state: 'OK', message: 'the rule is no longer configured', run_id: runId });
    }
  }
}

/** The syncs of the catalog with a `no_success` rule that are expected to run: a paused or completed sync is not stale. */
function ruledSyncs(engine: Engine, catalog: CatalogEntry[]): SyncConfig[] {
  return catalog
    .filter((e) => e.status !== 'PAUSED' && e.status !== 'COMPLETED')
    .map(effectiveSync)
    .filter((s): s is SyncConfig => s !== null && Boolean(rulesOf(engine, s).no_success));
}

/** Per sync, when its last run that did not fail finished, and when it was created. */
async function lastSuccesses(engine: Engine): Promise<Map<string, Row>> {
  return new Map((await engine.sql.runAndRead('alert_last_success')).map((r) => [String(r.sync_name), r]));
}

function verdictsOf(engine: Engine, ruled: SyncConfig[], rows: Map<string, Row>): Array<[SyncConfig, Verdict]> {
  return ruled.flatMap((sync): Array<[SyncConfig, Verdict]> => {
    const row = rows.get(sync.name);
    const verdict = row && noSuccessVerdict(rulesOf(engine, sync), { lastSuccessAt: ms(row.last_success_at), createdAt: ms(row.created_at), now: Date.now() });
    return verdict ? [[sync, verdict]] : [];
  });
}

/** The `no_success` verdicts of the catalog's syncs now, without writing anything (for `ebb status`, which has read the catalog). */
export async function staleVerdicts(engine: Engine, catalog?: CatalogEntry[]): Promise<Array<[SyncConfig, Verdict]>> {
  // Only a sync with the rule needs its last success: without one, an idle poller reads the catalog alone.
  const ruled = ruledSyncs(engine, catalog ?? (await readCatalog(engine.sql)));
  return ruled.length === 0 ? [] : verdictsOf(engine, ruled, await lastSuccesses(engine));
}

/** Evaluates `no_success` now (`ebb alerts check`) and notifies changes. Never rejects. */
export async function checkStale(engine: Engine): Promise<void> {
  await new StaleCheck().check(engine, null);
}

/**
 * `no_success` between runs, as the scheduler and the worker evaluate it (every STALE_CHECK_MS).
 * Given the change tokens they watch: while those stand, no run finished and nobody deployed, so
 * the last successes are those it read, and a verdict changes only as time passes. It then reads
 * nothing, and settles (reads and writes the alert states) only when a verdict turned: an idle
 * poller's look stays one statement.
 */
export class StaleCheck {
  private seen: { token: string; rows: Map<string, Row>; verdicts: string } | null = null;

  /** With the poller's tokens (null: none, read everything) and the catalog it read under them (default: read it). Never rejects. */
  async check(engine: Engine, token: string | null, catalog?: CatalogEntry[]): Promise<void> {
    try {
      const seen = token !== null && this.seen?.token === token ? this.seen : undefined;
      const ruled = ruledSyncs(engine, catalog ?? (await readCatalog(engine.sql)));
      const rows = seen?.rows ?? (ruled.length === 0 ? new Map<string, Row>() : await lastSuccesses(engine));
      const verdicts = verdictsOf(engine, ruled, rows);
      const key = JSON.stringify(verdicts.map(([sync, v]) => [sync.name, v.firing]));
      if (seen?.verdicts === key) return;
      for (const [sync, verdict] of verdicts) await settle(engine, sync, [verdict], null, {}, false);
      this.seen = token === null ? null : { token, rows, verdicts: key };
    } catch (e) {
      this.seen = null;
      warn(`the no_success alerts could not be evaluated: ${(e as Error).message}`);
    }
  }
}

/** An alert firing now. */
export interface FiringAlert {
  sync_name: string;
  rule: string;
  /** Since when; null for a `no_success` that holds but that no scheduler, worker or run has recorded yet. */
  since: unknown;
  message: string;
}

/** The FIRING alerts: the stored ones, with `no_success` as it holds now (from the catalog, when the caller has read it). */
export async function firingAlerts(engine: Engine, catalog?: CatalogEntry[]): Promise<FiringAlert[]> {
  const firing = await engine.sql.runAndRead('alert_states', { firing_only: true });
  const stored = firing.filter((r) => r.rule !== 'no_success');
  const since = new Map(firing.filter((r) => r.rule === 'no_success').map((r) => [String(r.sync_name), r.since]));
  const live = (await staleVerdicts(engine, catalog)).filter(([, v]) => v.firing);
  return [
    ...stored.map((r) => ({ sync_name: String(r.sync_name), rule: String(r.rule), since: r.since, message: String(r.message) })),
    ...live.map(([sync, v]) => ({ sync_name: sync.name, rule: v.rule, since: since.get(sync.name) ?? null, message: v.message })),
  ].sort((a, b) => a.sync_name.localeCompare(b.sync_name) || a.rule.localeCompare(b.rule));
}

/** `ebb alerts test`: a test notification to each channel (or one), each logged. */
export async function sendTest(engine: Engine, channel?: string) {
  return notify(engine, null, '(test)', 'test', {}, channel);
}
