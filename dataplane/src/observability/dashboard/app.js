// The dashboard page: polls /dashboard/api/state once a second for the page of
// routes and upstreams in view, and redraws. Every value is written with
// textContent: route ids, hosts and probe errors come from configuration and
// upstreams, and must never be read as markup.

const POLL_MS = 1000;
const PAGE = 50;
const UPSTREAM_PAGE = 20;

const view = { q: '', sort: 'rps', offset: 0, uq: '', uoffset: 0 };
let timer;
let inFlight;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null) continue;
    if (k === 'class') node.className = v;
    else node.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== undefined && c !== null) node.append(c instanceof Node ? c : String(c));
  return node;
}

const rate = (n) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const share = (s) => (s === null ? '–' : `${(s * 100).toFixed(s > 0 && s < 0.01 ? 2 : 1)}%`);
function duration(seconds) {
  if (seconds === null) return '–';
  if (seconds < 0.001) return `${(seconds * 1e6).toFixed(0)} µs`;
  if (seconds < 1) return `${(seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0)} ms`;
  return `${seconds.toFixed(2)} s`;
}
const ago = (ms) => {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
};
const range = (offset, count, total) => (total === 0 ? '0 of 0' : `${offset + 1}–${offset + count} of ${total}`);

function renderSummary(s) {
  $('total-rps').textContent = rate(s.totals.rps);
  $('total-5xx').textContent = share(s.totals.share5xx);
  $('total-inflight').textContent = String(s.totals.inFlight);
  const window = String(Math.round(s.windowSeconds) || 10);
  $('window').textContent = window;
  $('rejections-window').textContent = window;
  $('table-version').textContent = s.table ? `${s.table.version} (${s.table.routes} routes, ${s.table.upstreams} upstreams)` : 'no table yet';
  $('table-source').textContent = s.table ? s.table.source : '–';
  const a = s.lastAttempt;
  const last = $('last-attempt');
  last.replaceChildren();
  if (!a) last.append('–');
  else if (a.applied) last.append(el('span', { class: 'good', 'data-result': 'applied' }, a.unchanged ? 'unchanged' : 'applied'), ` ${ago(a.at)}`);
  else last.append(el('span', { class: 'bad', 'data-result': 'rejected', title: a.error }, 'rejected'), ` ${ago(a.at)}: `, el('span', { class: 'sub' }, a.error));
}

function renderRoutes(r) {
  const body = $('routes').tBodies[0];
  const rows = r.items.map((x) => {
    const match = [x.methods.length ? x.methods.join(',') : 'any', `${x.path.type} ${x.path.value}`, x.hosts.length ? `on ${x.hosts.join(', ')}` : ''].filter(Boolean).join(' ');
    const bad = x.share5xx !== null && x.share5xx > 0;
    return el(
      'tr',
      { 'data-route': x.id },
      el('td', { class: 'mono' }, x.id, x.source ? el('div', { class: 'sub' }, x.source) : null, x.invalid ? el('div', { class: 'bad' }, x.invalid) : null),
      el('td', { class: 'mono' }, match),
      el('td', { class: 'mono' }, x.upstreams.join(', ')),
      el('td', { class: 'num', 'data-field': 'rps' }, rate(x.rps)),
      el('td', { class: 'num' }, share(x.share4xx)),
      el('td', { class: `num${bad ? ' bad' : ''}`, 'data-field': '5xx' }, share(x.share5xx)),
      el('td', { class: 'num', 'data-field': 'p99' }, duration(x.p99)),
    );
  });
  body.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 7, class: 'empty' }, r.total === 0 ? 'No routes in the table.' : 'No route matches the search.'))]));
  $('route-range').textContent = range(r.offset, r.items.length, r.matching);
  $('route-prev').disabled = r.offset === 0;
  $('route-next').disabled = r.offset + r.items.length >= r.matching;
}

function renderUpstreams(u) {
  const cards = u.items.map((x) => {
    const breaker = x.circuitBreaker === null ? null : el('span', { class: `badge ${x.circuitBreaker === 'closed' ? 'good' : x.circuitBreaker === 'open' ? 'bad' : 'warn'}`, 'data-breaker': x.circuitBreaker }, `breaker ${x.circuitBreaker}`);
    const eligible = x.endpoints.filter((e) => e.eligible).length;
    const rows = x.endpoints.map((e) =>
      el(
        'tr',
        { 'data-endpoint': e.origin, 'data-state': e.eligible ? 'eligible' : 'down' },
        el('td', { class: 'mono' }, e.origin),
        el('td', {}, el('span', { class: `badge ${e.eligible ? 'good' : 'bad'}` }, e.eligible ? 'eligible' : 'out of rotation')),
        el('td', { class: e.health === 'failing' ? 'bad' : '' }, e.health, e.lastProbeError ? el('div', { class: 'sub' }, e.lastProbeError) : null),
        el('td', { class: e.outlier === 'ejected' ? 'bad' : '' }, e.outlier),
        el('td', { class: 'num' }, String(e.inFlight)),
      ),
    );
    return el(
      'div',
      { class: 'upstream', 'data-upstream': x.name },
      el('h3', {}, el('span', { class: 'mono' }, x.name), el('span', { class: `badge ${eligible === x.endpoints.length ? 'good' : eligible === 0 ? 'bad' : 'warn'}` }, `${eligible}/${x.endpoints.length} eligible`), breaker, el('span', { class: 'sub' }, `${x.loadBalancer}; all down: ${x.whenAllUnhealthy}`)),
      el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'Endpoint'), el('th', {}, 'State'), el('th', {}, 'Health check'), el('th', {}, 'Outlier'), el('th', { class: 'num' }, 'In flight'))), el('tbody', {}, ...rows)),
    );
  });
  $('upstreams').replaceChildren(...(cards.length ? cards : [el('div', { class: 'empty' }, u.total === 0 ? 'No upstreams in the table.' : 'No upstream matches the filter.')]));
  $('upstream-range').textContent = range(u.offset, u.items.length, u.matching);
  $('upstream-prev').disabled = u.offset === 0;
  $('upstream-next').disabled = u.offset + u.items.length >= u.matching;
}

function renderRejections(list) {
  const rows = list.map((x) => el('tr', { 'data-code': x.code }, el('td', { class: 'mono' }, x.code), el('td', { class: 'num' }, String(x.recent)), el('td', { class: 'num' }, String(x.total))));
  $('rejections').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 3, class: 'empty' }, 'None since start.'))]));
}

async function poll() {
  clearTimeout(timer);
  inFlight?.abort();
  const controller = new AbortController();
  inFlight = controller;
  const params = new URLSearchParams({ q: view.q, sort: view.sort, offset: String(view.offset), limit: String(PAGE), uq: view.uq, uoffset: String(view.uoffset), ulimit: String(UPSTREAM_PAGE) });
  try {
    const res = await fetch(`/dashboard/api/state?${params}`, { signal: controller.signal, cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const s = await res.json();
    renderSummary(s);
    renderRoutes(s.routes);
    renderUpstreams(s.upstreams);
    renderRejections(s.rejections);
    const live = $('live');
    live.dataset.state = 'live';
    live.dataset.at = String(s.at);
    live.textContent = `live · ${new Date(s.at).toLocaleTimeString()}`;
  } catch (err) {
    if (controller.signal.aborted) return;
    const live = $('live');
    live.dataset.state = 'stale';
    live.textContent = `not updating: ${err.message}`;
  }
  if (inFlight === controller) timer = setTimeout(poll, POLL_MS);
}

function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

$('route-search').addEventListener('input', debounce((e) => ((view.q = e.target.value), (view.offset = 0), poll()), 200));
$('route-sort').addEventListener('change', (e) => ((view.sort = e.target.value), (view.offset = 0), poll()));
$('route-prev').addEventListener('click', () => ((view.offset = Math.max(0, view.offset - PAGE)), poll()));
$('route-next').addEventListener('click', () => ((view.offset += PAGE), poll()));
$('upstream-search').addEventListener('input', debounce((e) => ((view.uq = e.target.value), (view.uoffset = 0), poll()), 200));
$('upstream-prev').addEventListener('click', () => ((view.uoffset = Math.max(0, view.uoffset - UPSTREAM_PAGE)), poll()));
$('upstream-next').addEventListener('click', () => ((view.uoffset += UPSTREAM_PAGE), poll()));
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) poll();
});
poll();
