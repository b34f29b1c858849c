/**
 * The alert rules as pure functions of a sync's recent runs and a clock: each rule says FIRING or
 * OK with why, or nothing when it cannot tell yet (too few runs to compare with).
 */
import type { AlertRules, VolumeCount } from '../config/alerts.ts';
import { formatDuration, parseInterval } from '../schedule/due.ts';

/** A finished run, as the rules read it. Times are ms since the epoch. */
export interface RunFacts {
  run_id: string;
  status: string;
  error: string | null;
  started: number;
  finished: number;
  /** Records planned, all actions. */
  planned: number;
  succeeded: number;
  failed: number;
  /** Null when the run did not count its source. */
  source_rows: number | null;
}

/** What the rules of one sync read. */
export interface SyncFacts {
  /** Its last finished runs, newest first. */
  runs: RunFacts[];
  /** Its records in doubt now. */
  needsReview: number;
  /** When its last run that did not fail finished, or null. */
  lastSuccessAt: number | null;
  /** When the sync came into the catalog: what `no_success` counts from before any success. */
  createdAt: number | null;
  now: number;
}

/** A rule's verdict: the rule's name (`volume.source_rows` for one count of a volume rule), and why. */
export interface Verdict {
  rule: string;
  firing: boolean;
  message: string;
}

const pct = (n: number) => `${Math.round(n * 10) / 10}%`;

/** The value of a count in a run. */
export function countOf(run: RunFacts, count: VolumeCount): number | null {
  if (count === 'sent') return run.succeeded + run.failed;
  if (count === 'source_rows') return run.source_rows;
  return run[count];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The rules that read the last run: nothing before a first run. */
function runRules(rules: AlertRules, facts: SyncFacts): Verdict[] {
  const [last, ...earlier] = facts.runs;
  if (!last) return [];
  const verdicts: Verdict[] = [];
  const failed = last.status === 'FAILED';
  if (rules.run_failed) {
    verdicts.push({ rule: 'run_failed', firing: failed, message: failed ? `run ${last.run_id} failed${last.error ? `: ${last.error}` : ''}` : `run ${last.run_id} ended ${last.status}` });
  }
  // A failed run is run_failed's news: its refused records do not fire a second alert.
  if (rules.failed_records && !failed) {
    const sent = last.succeeded + last.failed;
    const share = sent === 0 ? 0 : (last.failed / sent) * 100;
    const limit = rules.failed_records.above_percent;
    verdicts.push({ rule: 'failed_records', firing: share > limit, message: `${last.failed} of ${sent} records sent failed (${pct(share)}; the limit is ${pct(limit)}) in run ${last.run_id}` });
  }
  if (rules.run_time) {
    const { above, above_median_times: times, runs } = rules.run_time;
    const took = last.finished - last.started;
    const limit = above ? parseInterval(above) : Infinity;
    const previous = earlier.slice(0, runs - 1).map((r) => r.finished - r.started);
    // A median needs a few runs to mean something; until then only `above` holds.
    const typical = times !== undefined && previous.length >= 2 ? median(previous) : null;
    const overLimit = took > limit;
    const overMedian = typical !== null && took > typical * times!;
    if (above || typical !== null) {
      const why = overLimit ? `longer than ${above}` : overMedian ? `more than ${times} times the median of ${formatDuration(typical!)}` : 'within its limits';
      verdicts.push({ rule: 'run_time', firing: overLimit || overMedian, message: `run ${last.run_id} took ${formatDuration(took)}, ${why}` });
    }
  }
  // A failed run's counts say nothing about the data: the volume rules wait for one that did not fail.
  if (rules.volume && !failed) {
    const { counts, deviation_percent: limit, runs } = rules.volume;
    const baseline = earlier.filter((r) => r.status !== 'FAILED').slice(0, runs);
    for (const count of counts) {
      const value = countOf(last, count);
      const values = baseline.map((r) => countOf(r, count)).filter((v): v is number => v !== null);
      if (value === null || values.length < runs) continue;
      const average = values.reduce((a, b) => a + b, 0) / values.length;
      // From an average of 0, any change is infinitely large: nothing to measure against.
      if (average === 0) continue;
      const deviation = (Math.abs(value - average) / average) * 100;
      verdicts.push({
        rule: `volume.${count}`,
        firing: deviation > limit,
        message: `${count} was ${value} in run ${last.run_id}, ${pct(deviation)} off the average of ${Math.round(average * 10) / 10} over the previous ${values.length} runs (the limit is ${pct(limit)})`,
      });
    }
  }
  return verdicts;
}

/** The rule of a schedule that stopped: evaluated after runs and between them. */
export function noSuccessVerdict(rules: AlertRules, facts: Pick<SyncFacts, 'lastSuccessAt' | 'createdAt' | 'now'>): Verdict | null {
  if (!rules.no_success) return null;
  const base = facts.lastSuccessAt ?? facts.createdAt;
  if (base === null) return null;
  const limit = parseInterval(rules.no_success.for);
  const quiet = facts.now - base;
  const what = facts.lastSuccessAt === null ? `no successful run since the sync was deployed ${formatDuration(quiet)} ago` : `the last successful run finished ${formatDuration(quiet)} ago`;
  return { rule: 'no_success', firing: quiet > limit, message: `${what} (the limit is ${rules.no_success.for})` };
}

/** Every verdict the rules give on a sync's facts. */
export function evaluateRules(rules: AlertRules, facts: SyncFacts): Verdict[] {
  const verdicts = runRules(rules, facts);
  if (rules.needs_review) {
    const limit = rules.needs_review.above;
    verdicts.push({ rule: 'needs_review', firing: facts.needsReview > limit, message: `${facts.needsReview} records in doubt (NEEDS_REVIEW)${limit > 0 ? `; the limit is ${limit}` : ''}` });
  }
  const stale = noSuccessVerdict(rules, facts);
  if (stale) verdicts.push(stale);
  return verdicts;
}

/** How many runs the rules read at most. */
export function runsNeeded(rules: AlertRules): number {
  return 1 + Math.max(rules.run_time ? rules.run_time.runs : 0, rules.volume ? rules.volume.runs * 2 : 0);
}
