/** The buttons that act on one sync (trigger now, pause or start, delete), on the list and on its page. */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api, seg, ApiError } from './api.js';
import { ConfirmDialog } from './lib.js';

/**
 * Starts a run now; answers the run's id, or says which run is already in progress. A server that
 * queues runs for workers (Snowflake) answers a request's id instead, which names the run once a
 * worker has taken it.
 */
export async function trigger(name, fullResync = false) {
  try {
    const run = await api(`/syncs/${seg(name)}/runs`, { method: 'POST', body: { full_resync: fullResync } });
    if (!run.run_id) return { requestId: run.request_id, message: `A run of ${name} is queued for a worker (request ${run.request_id}).` };
    return { runId: run.run_id, message: `Run ${run.run_id} of ${name} started${fullResync ? ' (full resync)' : ''}.` };
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      const runId = error.problem.run_id;
      return { runId, message: runId ? `${name} is running already: run ${runId}.` : error.message };
    }
    throw error;
  }
}

/**
 * Trigger now, Pause or Start, and Delete (behind a confirmation). `onDone(message, result)` is
 * called after each action, `onError(error)` when the API refuses it. `label` names the sync for
 * screen readers where the buttons of several syncs sit side by side.
 */
export function SyncActions({ sync, onDone, onError, label = false }) {
  const name = sync.sync_name;
  const [busy, setBusy] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const who = label ? html`<span class="sr-only"> ${name}</span>` : null;

  const act = async (fn) => {
    setBusy(true);
    onError(null);
    try {
      await fn();
    } catch (error) {
      onError(error);
    } finally {
      setBusy(false);
    }
  };
  const run = () => act(async () => {
    const result = await trigger(name);
    onDone(result.message, result);
  });
  const paused = sync.status === 'PAUSED';
  const toggle = () => act(async () => {
    // Starting removes the PAUSED override rather than overriding the status with ACTIVE.
    await api(`/syncs/${seg(name)}`, { method: 'PATCH', body: { status: paused ? null : 'PAUSED' } });
    onDone(paused ? `${name} is started: it runs on its schedule again.` : `${name} is paused: it does not run until you start it.`);
  });
  const remove = () => act(async () => {
    await api(`/syncs/${seg(name)}`, { method: 'DELETE', query: { confirm: name } });
    setConfirming(false);
    onDone(`${name} is deleted.`, { deleted: true });
  });

  return html`<div class="row-actions">
    <button type="button" disabled=${busy} onClick=${run}>Trigger now${who}</button>
    <button type="button" disabled=${busy} onClick=${toggle}>${paused ? 'Start' : 'Pause'}${who}</button>
    <button type="button" class="danger" disabled=${busy} onClick=${() => setConfirming(true)}>Delete${who}</button>
    <${ConfirmDialog} open=${confirming} title=${`Delete ${name}?`} confirmLabel="Delete" busy=${busy} onConfirm=${remove} onClose=${() => setConfirming(false)}>
      <p>The sync leaves the catalog with its record state${sync.records != null ? ` (${sync.records} records)` : ''}, and its schedule stops. Its runs and history stay in the warehouse.</p>
      <p>A sync that is still in <code>ebb.yml</code> comes back on the next deploy: remove it there too.</p>
    <//>
  </div>`;
}
