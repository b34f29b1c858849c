/**
 * A sync's page: its state and key metrics, the run in progress (live), the charts and list of its
 * executions, the plan of its next run, and its definition with the admin overrides.
 */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api, seg } from './api.js';
import { Badge, ConfirmDialog, Json, Pager, Problem, count, duration, href, schedule, useInterval, useResource, when } from './lib.js';
import { SyncActions, trigger } from './actions.js';
import { LiveRun } from './live-run.js';
import { RunsChart, endedRuns } from './chart.js';
import { Overrides } from './overrides.js';

const runsPerPage = 20;

/** The planned counts of a run (`{create: 3, update: 1}`) as one line of text. */
function planned(value) {
  const counts = typeof value === 'string' ? JSON.parse(value) : value;
  if (!counts || Object.keys(counts).length === 0) return '—';
  return Object.entries(counts).map(([action, n]) => `${action} ${n}`).join(', ');
}

function Runs({ name, runs, page, setPage }) {
  const items = runs.data?.items ?? [];
  return html`<section aria-labelledby="runs-title">
    <h2 id="runs-title">Executions</h2>
    <${Problem} error=${runs.error} />
    ${endedRuns(items).length > 1 && html`<${RunsChart} runs=${items} />`}
    ${runs.data && items.length === 0 && html`<p>No run yet.</p>`}
    ${items.length > 0 &&
    html`<table class="cards runs">
      <caption class="sr-only">Executions of ${name}, newest first</caption>
      <thead><tr>
        <th scope="col">Started</th><th scope="col">Trigger</th><th scope="col">Status</th><th scope="col">Duration</th><th scope="col">Planned</th>
        <th scope="col" class="num">Synced</th><th scope="col" class="num">Failed</th><th scope="col" class="num">Delayed</th><th scope="col" class="num">Skipped</th><th scope="col">Error</th>
      </tr></thead>
      <tbody>
        ${items.map((r) => html`<tr key=${r.run_id}>
          <th scope="row" data-label="Started"><span title=${r.run_id}>${when(r.started_at)}</span></th>
          <td data-label="Trigger">${r.trigger}</td>
          <td data-label="Status"><${Badge} value=${r.status} /></td>
          <td data-label="Duration">${r.status === 'RUNNING' ? 'running' : duration(r.started_at, r.finished_at)}</td>
          <td data-label="Planned">${planned(r.planned)}</td>
          <td data-label="Synced" class="num">${count(r.succeeded)}</td>
          <td data-label="Failed" class="num">${count(r.failed)}</td>
          <td data-label="Delayed" class="num">${count(r.delayed)}</td>
          <td data-label="Skipped" class="num">${count(r.skipped)}</td>
          <td data-label="Error" class="error-text">${r.error ?? ''}</td>
        </tr>`)}
      </tbody>
    </table>`}
    <${Pager} page=${page} hasNext=${runs.data?.next_offset != null} onPage=${setPage} label="Pages of executions" />
  </section>`;
}

function Plan({ name }) {
  const [plan, setPlan] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const load = async () => {
    setBusy(true);
    setError(null);
    try {
      setPlan(await api(`/syncs/${seg(name)}/plan`));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return html`<section aria-labelledby="plan-title">
    <h2 id="plan-title">Plan of the next run</h2>
    <p>A dry run: what the next run would send, computed in the warehouse now. It changes nothing and calls no app.</p>
    <button type="button" onClick=${load} disabled=${busy}>${plan ? 'Compute again' : 'Compute the plan'}</button>
    <${Problem} error=${error} />
    ${plan &&
    html`<div class="plan" aria-live="polite">
      <p><strong>${count(plan.total)}</strong> records need action.</p>
      <dl class="counts">
        ${Object.entries(plan.actions ?? {}).map(([a, n]) => html`<div><dt>${a}</dt><dd>${count(n)}</dd></div>`)}
        ${Object.entries(plan.reasons ?? {}).map(([r, n]) => html`<div><dt>${r}</dt><dd>${count(n)}</dd></div>`)}
      </dl>
      ${plan.samples?.length > 0 &&
      html`<table class="cards">
        <caption>Sample records</caption>
        <thead><tr><th scope="col">Key</th><th scope="col">Action</th><th scope="col">Reason</th><th scope="col">Record</th></tr></thead>
        <tbody>
          ${plan.samples.map((s) => html`<tr>
            <th scope="row" data-label="Key">${s.record_key}</th>
            <td data-label="Action">${s.action}</td>
            <td data-label="Reason">${s.apply_reason}${s.source_error ? html` <span class="error-text">${s.source_error}</span>` : ''}</td>
            <td data-label="Record"><${Json} value=${s.transformed_record} label=${`Record ${s.record_key}`} /></td>
          </tr>`)}
        </tbody>
      </table>`}
    </div>`}
  </section>`;
}

export function SyncPage({ name }) {
  const sync = useResource(() => api(`/syncs/${seg(name)}`), [name]);
  const [message, setMessage] = useState('');
  const [error, setError] = useState(null);
  const [runId, setRunId] = useState(null);
  const [requestId, setRequestId] = useState(null);
  const [page, setPage] = useState(0);
  const runs = useResource(() => api(`/syncs/${seg(name)}/runs`, { query: { limit: runsPerPage, offset: page * runsPerPage } }), [name, page]);
  const s = sync.data;
  const definition = s?.deployed ?? s?.code;
  const refresh = () => {
    sync.reload();
    runs.reload();
  };
  const done = (text, result) => {
    setMessage(text);
    if (result?.deleted) {
      location.hash = '#/syncs';
      return;
    }
    if (result?.runId) setRunId(result.runId);
    setRequestId(result?.requestId ?? null);
    refresh();
  };
  const [confirmFull, setConfirmFull] = useState(false);
  const runFull = async () => {
    setConfirmFull(false);
    setError(null);
    try {
      const result = await trigger(name, true);
      done(result.message, result);
    } catch (e) {
      setError(e);
    }
  };
  const last = s?.summary ?? {};
  // The run to follow: the one triggered here, or one in progress (started by the scheduler, another tab...).
  const current = runId ?? (runs.data?.items ?? []).find((r) => r.status === 'RUNNING')?.run_id ?? null;
  // The sync's row names a run once it has ended and its outcomes are recorded: until then, the page follows it.
  useInterval(refresh, current && last.last_run_id !== current ? 1000 : null);
  // A queued run: its request names the run once a worker has taken it; then the page follows the run.
  useInterval(async () => {
    const request = await api(`/requests/${seg(requestId)}`).catch(() => null);
    if (request?.run_id) {
      setRequestId(null);
      setRunId(request.run_id);
    }
  }, requestId ? 2000 : null);

  if (sync.error && !s) return html`<section><h1 id="page-title">${name}</h1><${Problem} error=${sync.error} /><p><a href="#/syncs">Back to the syncs</a></p></section>`;
  if (!s) return html`<section><h1 id="page-title">${name}</h1><p>Loading…</p></section>`;
  return html`<article aria-labelledby="page-title">
    <nav class="crumbs" aria-label="Breadcrumb"><a href="#/syncs">Syncs</a> / <span aria-current="page">${name}</span></nav>
    <header class="sync-head">
      <h1 id="page-title">${name}</h1>
      <${Badge} value=${s.status} /> <${Badge} value=${s.health} />
      ${definition?.description && html`<p class="description">${definition.description}</p>`}
    </header>
    <div class="toolbar">
      <${SyncActions} sync=${{ ...last, ...s }} onDone=${done} onError=${setError} />
      <button type="button" onClick=${() => setConfirmFull(true)}>Full resync</button>
      <${ConfirmDialog} open=${confirmFull} title=${`Send every record of ${name} again?`} confirmLabel="Resync every record" onConfirm=${runFull} onClose=${() => setConfirmFull(false)}>
        <p>A full resync sends every record of the source again, changed or not, in a run that starts now.</p>
      <//>
      <a class="button" href=${href('syncs', name, 'records')}>Record debugger</a>
    </div>
    <p class="status" role="status" aria-live="polite">${message}</p>
    <${Problem} error=${error} />
    ${current && html`<${LiveRun} key=${current} runId=${current} onFinish=${refresh} />`}
    <dl class="metrics">
      <div><dt>Schedule</dt><dd>${schedule(last.schedule)}</dd></div>
      <div><dt>Last run</dt><dd>${last.last_run_id ? html`${when(last.last_run_started_at)} <${Badge} value=${last.last_run_status} />` : 'never'}</dd></div>
      <div><dt>Records</dt><dd>${count(s.records)}</dd></div>
      <div><dt>Failing records</dt><dd>${last.failing_records > 0 ? html`<a href=${href('syncs', name, 'records')}>${count(last.failing_records)}</a>` : count(last.failing_records)}</dd></div>
      <div><dt>Synced in last run</dt><dd>${count(last.succeeded)}</dd></div>
      <div><dt>Failed in last run</dt><dd>${count(last.failed)}</dd></div>
    </dl>
    ${last.last_error && html`<p class="problem">Last run's error: ${last.last_error}</p>`}
    ${(last.alerts_firing ?? []).map((a) => html`<p class="problem">Alert <strong>${a.rule}</strong> firing${a.since ? ` since ${when(a.since)}` : ''}: ${a.message}</p>`)}
    <${Runs} name=${name} runs=${runs} page=${page} setPage=${setPage} />
    <${Plan} name=${name} />
    <${Overrides} sync=${s} onSaved=${(text) => done(text)} />
  </article>`;
}
