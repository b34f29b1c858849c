/**
 * The Sync Manager's page: a shell and a router over the location's hash
 * (#/syncs, #/syncs/NAME, #/syncs/NAME/records?key=K), so the server serves one page.
 */
import { html, render } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { SyncList } from './syncs.js';
import { SyncPage } from './sync.js';
import { RecordDebugger } from './records.js';
import { saveToken } from './api.js';

/** The route in the hash: its decoded path parts and its query. */
function parseRoute() {
  const [path, query = ''] = location.hash.replace(/^#\/?/, '').split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}

function page({ parts, query }) {
  const [root, name, sub] = parts;
  if (root === 'syncs' && name && sub === 'records') return { title: `Records of ${name}`, view: html`<${RecordDebugger} name=${name} query=${query} />` };
  if (root === 'syncs' && name) return { title: name, view: html`<${SyncPage} name=${name} />` };
  return { title: 'Syncs', view: html`<${SyncList} />` };
}

/** Asks for the token of a server that needs one (EBB_SERVER_TOKEN); it is kept for this tab only. */
function TokenForm() {
  const submit = (event) => {
    event.preventDefault();
    saveToken(new FormData(event.currentTarget).get('token'));
    location.reload();
  };
  return html`<form class="token problem" onSubmit=${submit}>
    <p>This server needs its token: the value of <code>EBB_SERVER_TOKEN</code> it was started with.</p>
    <div class="field"><label for="token">Token</label><input id="token" name="token" type="password" required autocomplete="off" /></div>
    <button type="submit" class="primary">Use this token</button>
  </form>`;
}

function App() {
  const [route, setRoute] = useState(parseRoute);
  const [locked, setLocked] = useState(false);
  const main = useRef(null);
  useEffect(() => {
    const onChange = () => setRoute(parseRoute());
    const onLocked = () => setLocked(true);
    addEventListener('hashchange', onChange);
    addEventListener('ebb:unauthorized', onLocked);
    return () => {
      removeEventListener('hashchange', onChange);
      removeEventListener('ebb:unauthorized', onLocked);
    };
  }, []);
  const { title, view } = page(route);
  // A new page moves the focus to its content, as a page load would.
  useEffect(() => {
    document.title = `${title} · ebb Sync Manager`;
    main.current?.focus({ preventScroll: false });
  }, [route.parts.join('/')]);
  const skip = (event) => {
    event.preventDefault();
    main.current.focus();
  };
  return html`
    <a class="skip" href="#main" onClick=${skip}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/syncs">ebb <span>Sync Manager</span></a>
      <nav aria-label="Main"><a href="#/syncs" aria-current=${route.parts.length <= 1 ? 'page' : undefined}>Syncs</a></nav>
    </header>
    <main id="main" ref=${main} tabindex="-1">${locked ? html`<${TokenForm} />` : view}</main>`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
