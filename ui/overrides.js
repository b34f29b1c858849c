/**
 * A sync's definition from code and the admin overrides on top of it: an Edit form for the
 * overrides (the server validates them) and Revert, which drops them all.
 */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api, seg } from './api.js';
import { Json, Problem, parseSchedule, schedule } from './lib.js';

/**
 * A number typed in a field, sent as a number; an emptied field as null (the override is removed);
 * anything else as typed, for the server to judge.
 */
const numberOrText = (text) => (text.trim() === '' ? null : /^-?\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : text.trim());

/** The form's fields from the effective settings: the definition with the overrides on top. */
function fieldsOf(sync) {
  const effective = { ...(sync.deployed ?? sync.code ?? {}), ...(sync.overrides ?? {}) };
  const show = (v) => (v === undefined || v === null ? '' : String(v));
  return {
    schedule: schedule(effective.schedule),
    batch_size: show(effective.batch_size),
    max_run_seconds: show(effective.max_run_seconds),
    rate_requests: show(effective.rate_limit?.requests),
    rate_seconds: show(effective.rate_limit?.per_seconds),
  };
}

/** The overrides to send: the fields that differ from what the form started with. */
function changes(before, after) {
  const body = {};
  if (after.schedule !== before.schedule) body.schedule = after.schedule.trim() ? parseSchedule(after.schedule) : null;
  for (const name of ['batch_size', 'max_run_seconds']) if (after[name] !== before[name]) body[name] = numberOrText(after[name]);
  if (after.rate_requests !== before.rate_requests || after.rate_seconds !== before.rate_seconds) {
    const emptied = !after.rate_requests.trim() && !after.rate_seconds.trim();
    body.rate_limit = emptied ? null : { requests: numberOrText(after.rate_requests), per_seconds: numberOrText(after.rate_seconds) };
  }
  return body;
}

function Field({ id, label, hint, value, onInput, ...rest }) {
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <input id=${id} value=${value} onInput=${(e) => onInput(e.currentTarget.value)} aria-describedby=${hint ? `${id}-hint` : undefined} ...${rest} />
    ${hint && html`<small id=${`${id}-hint`}>${hint}</small>`}
  </div>`;
}

export function Overrides({ sync, onSaved }) {
  const [editing, setEditing] = useState(false);
  const [form, setForm] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const overrides = sync.overrides ?? {};
  const has = Object.keys(overrides).length > 0;
  const edit = () => {
    setForm(fieldsOf(sync));
    setError(null);
    setEditing(true);
  };
  const set = (name) => (value) => setForm((f) => ({ ...f, [name]: value }));
  const call = async (fn, text) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
      setEditing(false);
      onSaved(text);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const save = (event) => {
    event.preventDefault();
    const body = changes(fieldsOf(sync), form);
    if (Object.keys(body).length === 0) return setEditing(false);
    return call(() => api(`/syncs/${seg(sync.sync_name)}`, { method: 'PATCH', body }), `${sync.sync_name}: overrides saved (${Object.keys(body).join(', ')}).`);
  };
  const revert = () => call(() => api(`/syncs/${seg(sync.sync_name)}/revert`, { method: 'POST' }), `${sync.sync_name}: overrides removed; the settings from code apply again.`);

  return html`<section aria-labelledby="overrides-title">
    <h2 id="overrides-title">Admin overrides</h2>
    <p>Settings changed here win over <code>ebb.yml</code> until you revert them.</p>
    ${has ? html`<${Json} value=${overrides} label="The admin overrides" />` : html`<p>None: the sync runs as its code says.</p>`}
    ${(sync.override_issues ?? []).map((issue) => html`<p class="problem">Not applied: ${typeof issue === 'string' ? issue : `${issue.path}: ${issue.message}`}</p>`)}
    ${!editing &&
    html`<div class="toolbar">
      <button type="button" onClick=${edit}>Edit overrides</button>
      ${has && html`<button type="button" onClick=${revert} disabled=${busy}>Revert to code</button>`}
    </div>`}
    <${Problem} error=${error} />
    ${editing &&
    html`<form class="overrides" onSubmit=${save} noValidate aria-label="Edit the overrides">
      <${Field} id="ov-schedule" label="Schedule" hint="manual, once, live, every 15m, or cron 0 * * * *" value=${form.schedule} onInput=${set('schedule')} />
      <${Field} id="ov-batch" label="Batch size" value=${form.batch_size} onInput=${set('batch_size')} inputmode="numeric" />
      <${Field} id="ov-max" label="Time limit of a run (seconds)" value=${form.max_run_seconds} onInput=${set('max_run_seconds')} inputmode="numeric" />
      <fieldset>
        <legend>Rate limit</legend>
        <${Field} id="ov-rate-requests" label="Requests" value=${form.rate_requests} onInput=${set('rate_requests')} inputmode="numeric" />
        <${Field} id="ov-rate-seconds" label="Per seconds" value=${form.rate_seconds} onInput=${set('rate_seconds')} inputmode="numeric" />
      </fieldset>
      <div class="toolbar">
        <button type="submit" class="primary" disabled=${busy}>Save overrides</button>
        <button type="button" onClick=${() => setEditing(false)}>Cancel</button>
      </div>
    </form>`}
    <h2 id="definition-title">Definition</h2>
    <p>${sync.deployed ? 'As deployed in the catalog' : 'As ebb.yml defines it (not deployed yet)'}${sync.origin === 'admin' ? '; created by an admin in the warehouse' : ''}.</p>
    <${Json} value=${sync.deployed ?? sync.code ?? {}} label="The definition of the sync" />
  </section>`;
}
