/**
 * The record debugger: find a record by key and see its state and every outcome in its history,
 * with what was sent and what the app answered; list the failing records and resync or skip them.
 */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api, seg } from './api.js';
import { Badge, Json, Pager, Problem, count, href, useResource, when } from './lib.js';

const pageSize = 50;
const failing = 'FAILED,NEEDS_REVIEW,SOURCE_FAILURE';
const states = ['SUCCESS', 'FAILED', 'NEEDS_REVIEW', 'SOURCE_FAILURE', 'DELAYED', 'SKIPPED_ONCE', 'SKIPPED_ALWAYS', 'RESYNC_REQUESTED'];

/** The app's error in an outcome's result (`{error: {kind, message}, response}`), as one line. */
export function errorOf(result) {
  const value = typeof result === 'string' ? safeParse(result) : result;
  const error = value?.error;
  if (!error) return '';
  if (typeof error === 'string') return error;
  return [error.kind, error.message].filter(Boolean).join(': ');
}

function safeParse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return { error: text };
  }
}

function linkToKey(name, key) {
  return `${href('syncs', name, 'records')}?key=${encodeURIComponent(key)}`;
}

/** One record: its state now, and every outcome, newest first. */
function RecordDetail({ name, recordKey }) {
  const state = useResource(() => api(`/syncs/${seg(name)}/records`, { query: { key: recordKey, limit: 1000 } }), [name, recordKey]);
  const history = useResource(() => api(`/syncs/${seg(name)}/records/${seg(recordKey)}/history`), [name, recordKey]);
  const record = (state.data?.items ?? []).find((r) => String(r.record_key) === recordKey);
  const outcomes = history.data?.items ?? [];
  // Said here, not in the form: the form goes once the record is settled.
  const [settled, setSettled] = useState('');
  return html`<section aria-labelledby="record-title" class="record">
    <h2 id="record-title">Record <span class="mono">${recordKey}</span></h2>
    <p class="status" role="status" aria-live="polite">${settled}</p>
    <${Problem} error=${state.error ?? history.error} />
    ${state.data && !record && html`<p>No record with this key in the state of ${name}.${outcomes.length > 0 ? ' Its history is below.' : ''}</p>`}
    ${record &&
    html`<dl class="metrics">
        <div><dt>State</dt><dd><${Badge} value=${record.apply_state} /></dd></div>
        <div><dt>Reason</dt><dd>${record.apply_reason ?? '—'}</dd></div>
        <div><dt>Last action</dt><dd>${record.last_action ?? '—'}</dd></div>
        <div><dt>Identifier in the app</dt><dd class="mono">${record.app_identifier ?? '—'}</dd></div>
        <div><dt>Failures in a row</dt><dd>${count(record.failure_count)}</dd></div>
        <div><dt>Last synced</dt><dd>${when(record.last_synced_at)}</dd></div>
      </dl>
      ${errorOf(record.last_result) && html`<p class="problem">The app's last answer: ${errorOf(record.last_result)}</p>`}
      ${record.apply_state === 'NEEDS_REVIEW'
        ? html`<${Resolve} name=${name} recordKey=${recordKey} onDone=${(text) => (setSettled(text), state.reload(), history.reload())} />`
        : html`<${RecordButtons} name=${name} keys=${[recordKey]} onDone=${() => (state.reload(), history.reload())} />`}
      <h3>Current record</h3>
      <${Json} value=${record.transformed_record} label="The transformed record" />`}
    <h3>History</h3>
    ${history.data && outcomes.length === 0 && html`<p>No outcome recorded yet.</p>`}
    <ol class="history">
      ${outcomes.map((o) => html`<li class=${o.success ? 'ok' : 'ko'}>
        <p>
          <strong>${when(o.recorded_at)}</strong> · ${o.action} (${o.apply_reason ?? '—'}) · <${Badge} value=${o.apply_state ?? (o.success ? 'SUCCESS' : 'FAILED')} />
          ${o.app_identifier && html` · app id <span class="mono">${o.app_identifier}</span>`} · run <span class="mono">${o.run_id}</span>
        </p>
        ${errorOf(o.result) && html`<p class="error-text">${errorOf(o.result)}</p>`}
        <details>
          <summary>What was sent, and what the app answered</summary>
          <div class="pair">
            <div><h4>Sent</h4><${Json} value=${o.transformed_record} label="What was sent" /></div>
            <div><h4>The app's answer</h4><${Json} value=${o.result} label="What the app answered" /></div>
          </div>
        </details>
      </li>`)}
    </ol>
  </section>`;
}

/**
 * A record in doubt (NEEDS_REVIEW): the app may hold it already, so sending it again could create
 * it twice. Whoever checked the app settles it: it is there (under this identifier), or it is not.
 */
function Resolve({ name, recordKey, onDone }) {
  const [appId, setAppId] = useState('');
  const [error, setError] = useState(null);
  const resolve = async (body, text) => {
    setError(null);
    try {
      await api(`/syncs/${seg(name)}/records/resolve`, { method: 'POST', body: { keys: [recordKey], ...body } });
      onDone(text);
    } catch (e) {
      setError(e);
    }
  };
  const inApp = (event) => {
    event.preventDefault();
    return resolve({ app_ids: [appId.trim()] }, `Record ${recordKey} is the app's ${appId.trim()}.`);
  };
  return html`<form class="resolve" onSubmit=${inApp} aria-label="Settle the record in doubt">
    <p>In doubt: the app may hold this record already (it accepted it without a readable identifier, or did not answer). Check the app, then say what you found.</p>
    <div class="field">
      <label for="resolve-app-id">Its identifier in the app</label>
      <input id="resolve-app-id" value=${appId} onInput=${(e) => setAppId(e.currentTarget.value)} autocomplete="off" />
    </div>
    <div class="toolbar">
      <button type="submit" class="primary" disabled=${!appId.trim()}>It is in the app</button>
      <button type="button" onClick=${() => resolve({ not_in_app: true }, `Record ${recordKey} is not in the app: the next run creates it.`)}>It is not in the app</button>
    </div>
    <${Problem} error=${error} />
  </form>`;
}

/** Resync (send again in the next run) or skip records; the server refuses records in doubt. */
function RecordButtons({ name, keys, onDone }) {
  const [message, setMessage] = useState('');
  const [error, setError] = useState(null);
  const act = async (what, body, text) => {
    setError(null);
    try {
      await api(`/syncs/${seg(name)}/records/${what}`, { method: 'POST', body });
      setMessage(text);
      onDone();
    } catch (e) {
      setError(e);
    }
  };
  const n = keys.length === 1 ? `Record ${keys[0]}` : `${keys.length} records`;
  return html`<div class="toolbar">
    <button type="button" disabled=${keys.length === 0} onClick=${() => act('resync', { keys }, `${n} will be sent again in the next run.`)}>Resync</button>
    <button type="button" disabled=${keys.length === 0} onClick=${() => act('skip', { keys }, `${n} skipped until ${keys.length === 1 ? 'it changes' : 'they change'}.`)}>Skip</button>
    <button type="button" disabled=${keys.length === 0} onClick=${() => act('skip', { keys, always: true }, `${n} skipped in every run until resynced.`)}>Skip always</button>
    <p class="status" role="status" aria-live="polite">${message}</p>
    <${Problem} error=${error} />
  </div>`;
}

/** The records in some states (the failing ones by default), to select and act on. */
function RecordList({ name }) {
  const [state, setState] = useState(failing);
  const [page, setPage] = useState(0);
  const [selected, setSelected] = useState(new Set());
  const list = useResource(() => api(`/syncs/${seg(name)}/records`, { query: { apply_state: state, limit: pageSize, offset: page * pageSize } }), [name, state, page]);
  const items = list.data?.items ?? [];
  const toggle = (key) => setSelected((s) => {
    const next = new Set(s);
    if (!next.delete(key)) next.add(key);
    return next;
  });
  return html`<section aria-labelledby="list-title">
    <h2 id="list-title">Records by state</h2>
    <div class="field">
      <label for="record-state">State</label>
      <select id="record-state" value=${state} onChange=${(e) => (setState(e.currentTarget.value), setPage(0), setSelected(new Set()))}>
        <option value=${failing}>Failing (FAILED, NEEDS_REVIEW, SOURCE_FAILURE)</option>
        ${states.map((s) => html`<option value=${s}>${s}</option>`)}
      </select>
    </div>
    <${Problem} error=${list.error} />
    ${list.data && items.length === 0 && html`<p>No record in this state.</p>`}
    ${items.length > 0 &&
    html`<${RecordButtons} name=${name} keys=${[...selected]} onDone=${() => (setSelected(new Set()), list.reload())} />
      <table class="cards records">
        <caption class="sr-only">Records of ${name} in the chosen state</caption>
        <thead><tr>
          <th scope="col"><span class="sr-only">Select</span></th><th scope="col">Key</th><th scope="col">State</th><th scope="col">Last action</th>
          <th scope="col" class="num">Failures</th><th scope="col">Error</th><th scope="col">Last run</th>
        </tr></thead>
        <tbody>
          ${items.map((r) => html`<tr key=${r.record_key}>
            <td data-label="Select"><input type="checkbox" id=${`select-${r.record_key}`} checked=${selected.has(String(r.record_key))} onChange=${() => toggle(String(r.record_key))} aria-label=${`Select record ${r.record_key}`} /></td>
            <th scope="row" data-label="Key"><a href=${linkToKey(name, r.record_key)}>${r.record_key}</a></th>
            <td data-label="State"><${Badge} value=${r.apply_state} /></td>
            <td data-label="Last action">${r.last_action ?? '—'}</td>
            <td data-label="Failures" class="num">${count(r.failure_count)}</td>
            <td data-label="Error" class="error-text">${errorOf(r.last_result)}</td>
            <td data-label="Last run" class="mono">${r.last_run_id ?? '—'}</td>
          </tr>`)}
        </tbody>
      </table>`}
    <${Pager} page=${page} hasNext=${list.data?.next_offset != null} onPage=${setPage} label="Pages of records" />
  </section>`;
}

export function RecordDebugger({ name, query }) {
  const recordKey = query.get('key') ?? '';
  const [text, setText] = useState(recordKey);
  const search = (event) => {
    event.preventDefault();
    location.hash = text.trim() ? linkToKey(name, text.trim()) : href('syncs', name, 'records');
  };
  return html`<article aria-labelledby="page-title">
    <nav class="crumbs" aria-label="Breadcrumb"><a href="#/syncs">Syncs</a> / <a href=${href('syncs', name)}>${name}</a> / <span aria-current="page">Records</span></nav>
    <h1 id="page-title">Record debugger: ${name}</h1>
    <form class="search" role="search" onSubmit=${search}>
      <div class="field">
        <label for="record-key">Record key</label>
        <input id="record-key" type="search" value=${text} onInput=${(e) => setText(e.currentTarget.value)} autocomplete="off" />
      </div>
      <button type="submit" class="primary">Find</button>
    </form>
    ${recordKey && html`<${RecordDetail} key=${recordKey} name=${name} recordKey=${recordKey} />`}
    <${RecordList} name=${name} />
  </article>`;
}
