/** The sync list: state, health, schedule, last run and counts of every sync, with filters and row actions. */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api } from './api.js';
import { Badge, Pager, Problem, count, href, schedule, useInterval, useResource, when } from './lib.js';
import { SyncActions } from './actions.js';

const pageSize = 50;
const statuses = ['ACTIVE', 'PAUSED', 'COMPLETED', 'ERROR', 'NOT DEPLOYED'];
const healths = ['PENDING', 'HEALTHY', 'INCOMPLETE', 'FAILED', 'DELAYED'];

function Select({ id, label, value, options, onChange }) {
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <select id=${id} value=${value} onChange=${(e) => onChange(e.currentTarget.value)}>
      <option value="">Any</option>
      ${options.map((o) => html`<option value=${o}>${o}</option>`)}
    </select>
  </div>`;
}

export function SyncList() {
  const [filters, setFilters] = useState({ status: '', health: '', tag: '' });
  const [page, setPage] = useState(0);
  const [message, setMessage] = useState('');
  const [error, setError] = useState(null);
  const list = useResource(() => api('/syncs', { query: { ...filters, limit: pageSize, offset: page * pageSize } }), [filters.status, filters.health, filters.tag, page]);
  const syncs = list.data?.items ?? [];
  // Runs triggered here, by sync: the list follows them until the sync's row names them (they have ended).
  const [started, setStarted] = useState({});
  const following = syncs.filter((s) => started[s.sync_name] && started[s.sync_name] !== s.last_run_id);
  useInterval(list.reload, following.length > 0 ? 1000 : null);
  const set = (name) => (value) => {
    setPage(0);
    setFilters((f) => ({ ...f, [name]: value }));
  };
  const done = (name) => (text, result) => {
    setMessage(text);
    if (result?.runId) setStarted((s) => ({ ...s, [name]: result.runId }));
    list.reload();
  };

  return html`<section aria-labelledby="page-title">
    <h1 id="page-title">Syncs</h1>
    <form class="filters" role="search" aria-label="Filter the syncs" onSubmit=${(e) => e.preventDefault()}>
      <${Select} id="filter-status" label="State" value=${filters.status} options=${statuses} onChange=${set('status')} />
      <${Select} id="filter-health" label="Health" value=${filters.health} options=${healths} onChange=${set('health')} />
      <div class="field">
        <label for="filter-tag">Tag</label>
        <input id="filter-tag" type="search" value=${filters.tag} onChange=${(e) => set('tag')(e.currentTarget.value.trim())} />
      </div>
    </form>
    <p class="status" role="status" aria-live="polite">${message}</p>
    <${Problem} error=${error ?? list.error} />
    ${list.data && syncs.length === 0 && html`<p>No sync matches these filters.</p>`}
    ${syncs.length > 0 &&
    html`<table class="cards syncs">
      <caption class="sr-only">Syncs, with their state, health, schedule, last run and counts</caption>
      <thead><tr>
        <th scope="col">Sync</th><th scope="col">State</th><th scope="col">Health</th><th scope="col">Schedule</th>
        <th scope="col">Last run</th><th scope="col" class="num">Records</th><th scope="col" class="num">Failing</th><th scope="col"><span class="sr-only">Actions</span></th>
      </tr></thead>
      <tbody>
        ${syncs.map((s) => html`<tr key=${s.sync_name} data-sync=${s.sync_name}>
          <th scope="row" data-label="Sync"><a href=${href('syncs', s.sync_name)}>${s.sync_name}</a>${s.tags?.length > 0 && html`<span class="tags">${s.tags.map((t) => html`<span class="tag">${t}</span>`)}</span>`}</th>
          <td data-label="State"><${Badge} value=${s.status} /></td>
          <td data-label="Health"><span><${Badge} value=${s.health} />${s.alerts_firing?.length > 0 && html` <span class="badge badge-failed" title=${s.alerts_firing.map((a) => a.message).join('\n')}>${s.alerts_firing.length} alert${s.alerts_firing.length > 1 ? 's' : ''} firing</span>`}</span></td>
          <td data-label="Schedule">${schedule(s.schedule)}</td>
          <td data-label="Last run"><span>${following.includes(s) ? html`<${Badge} value="RUNNING" /> ` : ''}${s.last_run_id ? html`${when(s.last_run_started_at)} <${Badge} value=${s.last_run_status} /><br /><small>${count(s.succeeded)} synced, ${count(s.failed)} failed</small>` : 'never'}</span></td>
          <td data-label="Records" class="num">${count(s.records)}</td>
          <td data-label="Failing" class="num">${s.failing_records > 0 ? html`<a href=${href('syncs', s.sync_name, 'records')}>${count(s.failing_records)}</a>` : count(s.failing_records)}</td>
          <td data-label="Actions"><${SyncActions} sync=${s} label onDone=${done(s.sync_name)} onError=${setError} /></td>
        </tr>`)}
      </tbody>
    </table>`}
    <${Pager} page=${page} hasNext=${list.data?.next_offset != null} onPage=${setPage} label="Pages of syncs" />
  </section>`;
}
