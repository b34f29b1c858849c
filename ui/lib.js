/** Small pieces every page uses: data loading, polling, formatting and a few components. */
import { html } from 'htm/preact';
import { useCallback, useEffect, useId, useRef, useState } from 'preact/hooks';

/**
 * Loads data with `load()` when `deps` change, and again on `reload()`. While it reloads, the old
 * data stays on the page, so a refresh does not blink.
 */
export function useResource(load, deps) {
  const [state, setState] = useState({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let current = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => current && setState({ data, loading: false }),
      (error) => current && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => {
      current = false;
    };
  }, [...deps, tick]);
  return { ...state, reload: useCallback(() => setTick((t) => t + 1), []) };
}

/** Calls `fn` every `ms` milliseconds while `ms` is a number. */
export function useInterval(fn, ms) {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (typeof ms !== 'number') return undefined;
    const id = setInterval(() => saved.current(), ms);
    return () => clearInterval(id);
  }, [ms]);
}

/** `#/syncs/NAME/...`: a link inside the page; every part is encoded. */
export function href(...parts) {
  return `#/${parts.map((p) => encodeURIComponent(String(p))).join('/')}`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** A timestamp as the reader's local date and time; an em dash when there is none. */
export function when(value) {
  if (!value) return '—';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : dateTime.format(date);
}

/** A duration in seconds, from two timestamps or a number of seconds, e.g. `2 min 5 s`. */
export function duration(startedAt, finishedAt) {
  const seconds = typeof startedAt === 'number' ? startedAt : finishedAt && startedAt ? (new Date(finishedAt) - new Date(startedAt)) / 1000 : null;
  if (seconds === null || Number.isNaN(seconds)) return '—';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m} min ${Math.round(seconds % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A count, with thousands separators; an em dash when there is none. */
export function count(value) {
  return value === null || value === undefined ? '—' : Number(value).toLocaleString();
}

/** A state, health or run status as a coloured label (the colour is never the only cue: the word is there). */
export function Badge({ value }) {
  if (!value) return html`<span class="badge">—</span>`;
  return html`<span class=${`badge badge-${String(value).toLowerCase().replace(/[^a-z_]/g, '')}`}>${value}</span>`;
}

/** A value as indented JSON text (never as HTML: values from the warehouse and the app are untrusted). */
export function Json({ value, label }) {
  return html`<pre class="json" tabindex="0" aria-label=${label}><code>${typeof value === 'string' ? value : JSON.stringify(value, null, 2)}</code></pre>`;
}

/** An error of the API, announced to screen readers, with the fields it names. */
export function Problem({ error }) {
  if (!error) return null;
  const fields = error.problem?.errors ?? error.problem?.issues ?? [];
  return html`<div class="problem" role="alert">
    <p>${error.message}</p>
    ${fields.length > 0 &&
    html`<ul>
      ${fields.map((f) => html`<li>${[].concat(f.path ?? []).join('.')}${f.path ? ': ' : ''}${f.message ?? String(f)}</li>`)}
    </ul>`}
  </div>`;
}

/**
 * A modal confirmation in a native <dialog>: it traps the focus, closes on Escape, and starts on
 * the harmless button.
 */
export function ConfirmDialog({ open, title, children, confirmLabel, onConfirm, onClose, busy }) {
  const ref = useRef(null);
  const titleId = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return html`<dialog ref=${ref} class="confirm" aria-labelledby=${titleId} onClose=${onClose}>
    <h2 id=${titleId}>${title}</h2>
    ${children}
    <div class="actions">
      <button type="button" autofocus onClick=${() => ref.current.close()}>Cancel</button>
      <button type="button" class="danger" disabled=${busy} onClick=${onConfirm}>${confirmLabel}</button>
    </div>
  </dialog>`;
}

/** Previous and next page buttons for a paginated list. */
export function Pager({ page, hasNext, onPage, label }) {
  if (page === 0 && !hasNext) return null;
  return html`<nav class="pager" aria-label=${label}>
    <button type="button" disabled=${page === 0} onClick=${() => onPage(page - 1)}>Previous</button>
    <span>Page ${page + 1}</span>
    <button type="button" disabled=${!hasNext} onClick=${() => onPage(page + 1)}>Next</button>
  </nav>`;
}

/** A schedule as `ebb.yml` writes it: `manual`, `once`, `live`, `every 15m`, `cron 0 * * * *`. */
export function schedule(value) {
  // The API gives the schedule as JSON text ("manual", {"every":"15m"}); ebb.yml as a value.
  let v = value;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      // Plain text already.
    }
  }
  if (!v) return 'manual';
  if (typeof v === 'object') return v.every ? `every ${v.every}` : v.cron ? `cron ${v.cron}` : JSON.stringify(v);
  return String(v);
}

/** The schedule a person typed, in the shape of `ebb.yml` (`every 15m` → {every: '15m'}); anything else is sent as typed, for the server to judge. */
export function parseSchedule(text) {
  const match = /^(every|cron):?\s+(.+)$/.exec(text.trim());
  return match ? { [match[1]]: match[2].trim() } : text.trim();
}
