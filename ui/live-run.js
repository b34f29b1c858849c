/** A run in progress, followed live: its phase and progress while it runs, then its counts. */
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { api, seg } from './api.js';
import { Badge, Problem, count, duration, useInterval, useResource } from './lib.js';

const phases = { plan: 'Planning', apply: 'Sending', record: 'Recording the outcomes' };

export function LiveRun({ runId, onFinish }) {
  const run = useResource(() => api(`/runs/${seg(runId)}`), [runId]);
  const [cancelling, setCancelling] = useState(false);
  const [error, setError] = useState(null);
  const r = run.data;
  const running = !r || r.status === 'RUNNING';
  useInterval(run.reload, running ? 1000 : null);
  const over = Boolean(r) && !running;
  useEffect(() => {
    if (over) onFinish();
  }, [over]);
  const cancel = async () => {
    setCancelling(true);
    try {
      await api(`/runs/${seg(runId)}/cancel`, { method: 'POST' });
      run.reload();
    } catch (e) {
      setError(e);
    } finally {
      setCancelling(false);
    }
  };
  const done = r?.progress?.applied ?? null;
  const total = r?.progress?.planned ?? null;
  return html`<section class=${`live-run ${running ? 'running' : 'done'}`} aria-labelledby="live-title">
    <h2 id="live-title">${running ? 'Run in progress' : 'Last run'} <span class="mono">${runId}</span></h2>
    <${Problem} error=${error ?? run.error} />
    <div aria-live="polite" class="live-text">
      ${running
        ? html`<p><${Badge} value=${r?.status ?? 'RUNNING'} /> ${phases[r?.phase] ?? r?.phase ?? 'Starting'}${total !== null ? html`: ${count(done)} of ${count(total)} records` : ''}</p>`
        : html`<p><${Badge} value=${r.status} /> in ${duration(r.started_at, r.finished_at)}: <strong>${count(r.succeeded)}</strong> synced, <strong>${count(r.failed)}</strong> failed${r.delayed ? html`, ${count(r.delayed)} delayed` : ''}.</p>
            ${r.error && html`<p class="error-text">${r.error}</p>`}`}
    </div>
    ${running && html`<progress max=${total || undefined} value=${total ? done : undefined} aria-label="Records sent">${total ? `${done} of ${total}` : ''}</progress>`}
    ${running && html`<button type="button" onClick=${cancel} disabled=${cancelling}>Cancel the run</button>`}
  </section>`;
}
