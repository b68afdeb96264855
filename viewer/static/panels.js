// The panels beside the replayed page: console, network (waterfall), errors (stack traces),
// performance and freezes, environment. They are built from the engine's entries
// (viewer/src/entries.rs). Every recorded string is inserted as text, never as HTML.
// Clicking an entry seeks there; while the session plays, the entries up to the current moment
// are marked and the latest one is kept in view.

const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
};

export function fmtTime(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function bytes(n) {
  return n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(1)} MB`;
}

// ---- network detail: Resource Timing phases, failure reasons, WebSockets ----

/** The waterfall's phases, in order: [entry field, legend label]. */
const PHASES = [['blocked', 'Queued'], ['dns', 'DNS'], ['connect', 'Connect'], ['tls', 'TLS'],
  ['ttfb', 'Waiting (TTFB)'], ['download', 'Download']];

/** What a failure kind (protocol/src/network.rs FailureKind) is called in the panel. */
const FAILURES = {
  network: 'network error', cors: 'blocked by CORS', aborted: 'aborted', timeout: 'timed out',
  cross_origin: 'CORS or network error',
};
const FAILURE_HELP = {
  cross_origin: 'A cross-origin request failed. Browsers report a request refused by CORS exactly like a '
    + 'network error (so that pages cannot probe other origins): check the response\'s Access-Control-Allow-Origin '
    + 'and whether the server was reachable.',
};

const ms = (v) => `${Math.round(v * 10) / 10} ms`;

/** The legend of the waterfall's phase colours, first in the network panel. */
function legend() {
  const li = el('li', 'legend');
  for (const [k, label] of PHASES) {
    const item = el('span', 'legend-item');
    item.append(el('b', `ph ph-${k}`), el('span', null, label));
    li.append(item);
  }
  return li;
}

/** A request's detail: status, failure, phases, sizes (as a list of terms). */
function requestDetail(e, status) {
  const rows = [['Status', status], ['Duration', `${e.duration} ms`]];
  if (e.failure && e.failure !== 'none') {
    rows.push(['Failure', `${FAILURES[e.failure] || e.failure}${e.error ? `: ${e.error}` : ''}`]);
    if (FAILURE_HELP[e.failure]) rows.push(['Why unsure', FAILURE_HELP[e.failure]]);
  }
  const t = e.timing;
  if (!t) rows.push(['Timing', 'no Resource Timing entry (browser without the API, or none matched)']);
  else if (t.restricted) rows.push(['Timing', 'hidden by the server: a cross-origin response without Timing-Allow-Origin exposes only its total']);
  else {
    for (const [k, label] of PHASES) rows.push([label, ms(t[k])]);
    if (t.protocol) rows.push(['Protocol', t.protocol]);
    rows.push(['Transferred', `${bytes(t.transfer)}${t.transfer ? '' : ' (cache)'}`],
      ['Body', `${bytes(t.encoded)} encoded, ${bytes(t.decoded)} decoded`]);
  }
  rows.push(['Sent', bytes(e.req)], ['Received', bytes(e.res)]);
  const dl = el('dl', 'net-detail');
  for (const [k, v] of rows) dl.append(el('dt', null, k), el('dd', null, v));
  return dl;
}

/** The phases of a request's bar, as segments of its fill. */
function phaseSegments(fill, e) {
  const t = e.timing;
  if (!t || t.restricted) return;
  const total = Math.max(e.duration, PHASES.reduce((n, [k]) => n + t[k], 0));
  if (!(total > 0)) return;
  for (const [k, label] of PHASES) {
    if (!(t[k] > 0)) continue;
    const b = el('b', `ph ph-${k}`);
    b.style.width = `${(t[k] / total) * 100}%`;
    b.title = `${label} ${ms(t[k])}`;
    fill.append(b);
  }
}

// No imports (the exported file loads each module from a data: URL): the player hands in
// `culprit` (freezes.js), which names a script by its original frame when a map gave one.
let culprit = (s) => `${s.fn || s.invoker || '(anonymous)'} ${s.source || ''}`;

function scriptLines(scripts) {
  return scripts.map((s) => `${culprit(s)} — ${s.duration} ms`).join('\n');
}

/** Lines of original source around a frame's line, the line itself marked (as freezes.js). */
function contextText(o) {
  const width = String(o.context_start + o.context.length - 1).length;
  return o.context.map((l, i) => {
    const n = o.context_start + i;
    return `${n === o.line ? '>' : ' '} ${String(n).padStart(width)} | ${l}`;
  }).join('\n');
}

// Stacks read through the release's source maps, by their recorded text (filled from
// `GET /api/v1/projects/{project}/sessions/{id}/symbolicated`; bounded by the server).
const originalStacks = new Map();

/** A stack as text: its original frames when a source map gave them (the top one with a few
 * lines of source), else as recorded. */
function stackText(stack) {
  const frames = originalStacks.get(stack);
  if (!frames) return stack;
  const out = [];
  let first = true;
  for (const f of frames) {
    const o = f.original;
    if (!o) { out.push(`    at ${f.raw.function || '(anonymous)'} (${f.raw.url}:${f.raw.line}:${f.raw.column})`); continue; }
    out.push(`    at ${o.function} (${o.file}:${o.line}:${o.column})`);
    if (first && o.context.length) out.push(contextText(o));
    first = false;
  }
  out.push('', `minified:\n${stack}`);
  return out.join('\n');
}

/** True for an entry that is an error for the timeline (errors, console errors, failed requests). */
export function isFailedRequest(e) {
  // A beacon has no status: the browser only says whether it queued it.
  if (e.k === 'ws') return e.phase === 'error';
  return e.k === 'network' && (e.failed || e.aborted || e.status >= 400 || (e.status === 0 && e.kind !== 'beacon'));
}

/** Which panel an entry belongs to, or null. */
function panelOf(e) {
  switch (e.k) {
    case 'console': return 'console';
    case 'network': case 'ws': return 'network';
    case 'error': return 'errors';
    case 'longframe': case 'metric': case 'freeze': case 'note': return 'performance';
    case 'env': case 'app': case 'page': return 'environment';
    default: return null;
  }
}

/**
 * Panels in `root`. `player` gives `start()` (session start, epoch ms), `duration()` and
 * `seek(ms)` (relative to the start), and optionally `culprit(script)` (how to name a script).
 */
export function createPanels(root, player) {
  if (player.culprit) culprit = player.culprit;
  const lists = {};
  for (const ol of root.querySelectorAll('[data-panel]')) lists[ol.dataset.panel] = ol;
  if (lists.network) lists.network.append(legend());
  const sockets = new Map(); // `${page}:${id}` → a WebSocket's row and figures
  const tabs = root.querySelectorAll('[data-tab]');
  const rows = []; // [time, li] in time order, every panel
  let current = null;
  let shown = 0; // rows[0..shown) are at or before the current moment
  let hovered = false;
  root.addEventListener('mouseenter', () => { hovered = true; });
  root.addEventListener('mouseleave', () => { hovered = false; });

  function show(name) {
    for (const t of tabs) t.setAttribute('aria-selected', String(t.dataset.tab === name));
    for (const [k, ol] of Object.entries(lists)) ol.hidden = k !== name;
  }
  for (const t of tabs) t.addEventListener('click', () => show(t.dataset.tab));

  function count(name) {
    const tab = root.querySelector(`[data-tab="${name}"] .count`);
    const n = lists[name].querySelectorAll(':scope > .entry').length;
    if (tab) tab.textContent = n ? String(n) : '';
  }

  function row(e, cls) {
    const li = el('li', `entry ${cls || ''}`);
    li.dataset.t = String(e.t);
    li.dataset.kind = e.k;
    li.append(el('time', 'at', fmtTime(e.t - player.start())));
    li.addEventListener('click', (ev) => {
      if (ev.target.closest('summary')) return;
      player.seek(e.t - player.start());
    });
    return li;
  }

  function details(summary, body) {
    const d = el('details');
    d.append(el('summary', null, summary), el('pre', 'stack', body));
    return d;
  }

  const stackRows = []; // [pre, recorded stack] of every error and console stack shown
  function stackDetails(summary, stack) {
    const d = details(summary, stackText(stack));
    stackRows.push([d.lastChild, stack]);
    if (originalStacks.has(stack)) d.classList.add('symbolicated');
    return d;
  }

  function build(e) {
    switch (e.k) {
      case 'console': {
        const li = row(e, `level-${e.level}`);
        li.append(el('span', 'level', e.level));
        const text = e.args.join(' ');
        if (e.stack) li.append(stackDetails(text, e.stack)); else li.append(el('span', 'msg', text));
        return li;
      }
      case 'error': {
        const li = row(e, 'level-error');
        li.append(el('span', 'level', e.kind));
        const where = e.source ? ` (${e.source}:${e.line}:${e.column})` : '';
        const times = e.count > 1 ? ` ×${e.count}` : '';
        li.append(e.stack ? stackDetails(`${e.message}${where}${times}`, e.stack) : details(`${e.message}${where}${times}`, '(no stack)'));
        return li;
      }
      case 'network': {
        const li = row(e, isFailedRequest(e) ? 'failed' : '');
        const reason = e.failure && e.failure !== 'none' ? FAILURES[e.failure] : '';
        const status = e.failed ? (reason || e.error || 'failed') : e.aborted ? 'aborted' : e.kind === 'beacon' ? 'queued' : String(e.status);
        if (e.failure && e.failure !== 'none') li.dataset.failure = e.failure;
        li.append(el('span', 'method', e.method), el('span', 'status', status), el('span', 'msg url', e.url));
        li.title = `${e.kind} ${e.method} ${e.url}\n${status}${e.error ? ` (${e.error})` : ''} · ${e.duration} ms · sent ${bytes(e.req)} · received ${bytes(e.res)}`;
        const bar = el('span', 'waterfall');
        const fill = el('i');
        const d = Math.max(1, player.duration());
        fill.style.left = `${((e.t - player.start()) / d) * 100}%`;
        fill.style.width = `${Math.max(0.5, (e.duration / d) * 100)}%`;
        phaseSegments(fill, e);
        bar.append(fill);
        const size = e.timing && !e.timing.restricted && e.timing.transfer ? ` · ${bytes(e.timing.transfer)}` : '';
        const more = el('details', 'net');
        more.append(el('summary', null, 'detail'), requestDetail(e, status));
        li.append(bar, el('span', 'dur', `${e.duration} ms${size}`), more);
        return li;
      }
      case 'ws': return websocket(e);
      case 'longframe': {
        const li = row(e, e.duration >= 200 ? 'level-warn' : '');
        li.append(el('span', 'level', e.longTask ? 'long task' : 'long frame'));
        const text = `${e.duration} ms (blocking ${e.blocking} ms, style/layout ${e.layout} ms)`;
        if (e.scripts.length) li.append(details(text, scriptLines(e.scripts))); else li.append(el('span', 'msg', text));
        return li;
      }
      case 'metric': {
        const li = row(e);
        li.append(el('span', 'level', 'metric'), el('span', 'msg', `${e.name} = ${Math.round(e.value * 1000) / 1000}`));
        return li;
      }
      case 'freeze': {
        const li = row(e, 'level-error freeze');
        if (e.phase === 'start') {
          li.append(el('span', 'level', 'frozen'), el('span', 'msg', `main thread stopped answering${e.action ? ` after ${e.action}` : ''}`));
        } else {
          li.append(el('span', 'level', 'recovered'));
          const text = `froze for ${e.duration} ms`;
          if (e.scripts.length) li.append(details(`${text}: ${e.scripts[0].fn || e.scripts[0].source}`, scriptLines(e.scripts)));
          else li.append(el('span', 'msg', text));
        }
        return li;
      }
      case 'note': {
        const li = row(e, 'level-warn');
        li.append(el('span', 'level', e.kind), el('span', 'msg', `${e.text}${e.count > 1 ? ` ×${e.count}` : ''}`));
        return li;
      }
      case 'env': {
        const li = row(e, 'facts');
        const dl = el('dl');
        for (const [k, v] of [['Browser', `${e.browser} ${e.version}`], ['OS', e.os], ['Pixel ratio', e.dpr],
          ['Memory', e.memory ? `${e.memory} GiB` : 'unknown'], ['CPU cores', e.cores || 'unknown'],
          ['Connection', e.connection], ['Language', e.language], ['Time zone', e.timezone]]) {
          dl.append(el('dt', null, k), el('dd', null, v));
        }
        li.append(dl);
        return li;
      }
      case 'app': {
        const li = row(e, 'facts');
        const label = { user: 'User', release: 'Release', environment: 'Environment', flags: 'Feature flags' }[e.fact] || e.fact;
        li.append(el('span', 'level', label), el('span', 'msg', e.traits ? `${e.value} ${e.traits}` : e.value));
        return li;
      }
      case 'page': {
        const li = row(e, 'facts');
        li.append(el('span', 'level', 'page'), el('span', 'msg', `${e.url} · ${e.w}×${e.h}`));
        li.title = e.ua;
        return li;
      }
      default: return null;
    }
  }

  /**
   * A WebSocket connection as one row, built at its first event and brought up to date by the
   * later ones: lifetime bar, state, message counts and sizes, captured payloads.
   */
  function websocket(e) {
    const key = `${e.page}:${e.id}`;
    let c = sockets.get(key);
    const fresh = !c;
    if (fresh) {
      if (sockets.size >= 1000) return null; // bounded: a page opening sockets in a loop
      const li = row(e, 'websocket');
      const state = el('span', 'status');
      const counts = el('span', 'msg ws-counts');
      const bar = el('span', 'waterfall');
      const fill = el('i');
      bar.append(fill);
      const more = el('details', 'net');
      const payloads = el('ol', 'ws-messages');
      const dropped = el('p', 'ws-dropped');
      more.append(el('summary', null, 'messages'), payloads, dropped);
      li.append(el('span', 'method', 'WS'), state, el('span', 'msg url', e.url), bar, counts, more);
      c = { li, state, counts, fill, payloads, dropped, start: e.t, end: 0, shown: 0 };
      sockets.set(key, c);
    }
    if (e.phase === 'close') c.end = e.t;
    const d = Math.max(1, player.duration());
    const until = c.end || player.start() + player.duration();
    c.fill.style.left = `${((c.start - player.start()) / d) * 100}%`;
    c.fill.style.width = `${Math.max(0.5, ((until - c.start) / d) * 100)}%`;
    if (e.phase === 'error') c.li.classList.add('failed');
    c.state.textContent = e.phase === 'close'
      ? `closed ${e.code}${e.reason ? ` ${e.reason}` : ''}${e.clean ? '' : ' (not clean)'}`
      : e.phase === 'error' ? 'error' : 'open';
    c.li.dataset.sent = String(e.sent);
    c.li.dataset.received = String(e.received);
    c.counts.textContent = `↑ ${e.sent} msg${e.sent === 1 ? '' : 's'} (${bytes(e.sentBytes)}) · ↓ ${e.received} msg${e.received === 1 ? '' : 's'} (${bytes(e.receivedBytes)})${c.end ? ` · ${Math.round(c.end - c.start)} ms` : ''}`;
    for (const m of e.messages) {
      if (c.shown >= 200) break;
      c.shown++;
      const li = el('li', m.sent ? 'sent' : 'received');
      li.append(el('span', 'at', fmtTime(m.t - player.start())), el('span', 'dir', m.sent ? '↑' : '↓'),
        el('span', 'size', bytes(m.size)), el('code', 'data', m.binary ? '(binary)' : m.data));
      c.payloads.append(li);
    }
    c.dropped.textContent = e.dropped ? `${e.dropped} payload${e.dropped === 1 ? '' : 's'} not captured` : '';
    c.dropped.hidden = !e.dropped;
    return fresh ? c.li : null;
  }

  function add(entries) {
    const touched = new Set();
    for (const e of entries) {
      const name = panelOf(e);
      if (!name) continue;
      const li = build(e);
      if (!li) continue;
      li.classList.add('future');
      lists[name].append(li);
      rows.push([e.t, li]);
      touched.add(name);
    }
    for (const name of touched) count(name);
  }

  /** Marks entries up to `now` (epoch ms) and keeps the latest in view. */
  function follow(now) {
    let lo = 0, hi = rows.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (rows[mid][0] <= now) lo = mid + 1; else hi = mid; }
    const latest = lo > 0 ? rows[lo - 1][1] : null;
    for (let i = Math.min(lo, shown); i < Math.max(lo, shown); i++) rows[i][1].classList.toggle('future', i >= lo);
    shown = lo;
    if (latest === current) return;
    if (current) current.classList.remove('current');
    current = latest;
    if (!current) return;
    current.classList.add('current');
    if (!hovered && !current.parentElement.hidden) current.scrollIntoView({ block: 'nearest' });
  }

  /**
   * Shows, first in the environment panel, how this session's environment compares with the
   * project's other sessions (`GET /api/v1/projects/{project}/sessions/{id}/environment`): a value few sessions
   * share is flagged, since that is where "works on my machine" bugs hide.
   */
  function compare(facts) {
    if (!facts.length) return;
    const li = el('li', 'entry compare');
    const total = Math.max(...facts.map((f) => f.total));
    li.append(el('strong', null, `Compared with ${total} session${total === 1 ? '' : 's'} of this project`));
    const table = el('table', 'env-compare');
    const head = el('tr');
    for (const h of ['', 'This session', 'Sessions with it', 'Most common']) head.append(el('th', null, h));
    table.append(head);
    let unusual = 0;
    for (const f of facts) {
      const share = f.total ? f.same / f.total : 1;
      const odd = f.total >= UNUSUAL_MIN_SESSIONS && share < UNUSUAL_SHARE;
      if (odd) unusual++;
      const tr = el('tr', odd ? 'unusual' : '');
      const common = f.common.filter((c) => c.value !== f.value).map((c) => `${c.value} (${Math.round((c.sessions / f.total) * 100)}%)`);
      tr.append(el('th', null, f.name), el('td', 'value', f.value),
        el('td', null, `${Math.round(share * 100)}% (${f.same}/${f.total})${odd ? ' · unusual' : ''}`),
        el('td', null, common.join(', ') || '—'));
      table.append(tr);
    }
    li.append(table);
    lists.environment.prepend(li);
    const tab = root.querySelector('[data-tab="environment"]');
    if (tab && unusual) tab.dataset.unusual = String(unusual);
  }

  /** Shows error and console stacks read through source maps (the symbolicated answer). */
  function symbolicate(data) {
    for (const s of data.stacks || []) originalStacks.set(s.stack, s.frames);
    for (const [pre, stack] of stackRows) {
      if (!originalStacks.has(stack)) continue;
      pre.textContent = stackText(stack);
      pre.parentElement.classList.add('symbolicated');
    }
  }

  /**
   * Shows, first in the environment panel, this session beside sessions of the same page in
   * another environment (`GET /api/v1/projects/{project}/sessions/{id}/compare`): what differs most, then the
   * figures side by side. Staging-only-works bugs live in these differences.
   */
  function sideBySide(c) {
    if (!c || !c.other_environment || !c.peers.length) return;
    const li = el('li', 'entry compare side-by-side');
    const n = c.peers.length;
    li.append(el('strong', null, `${c.environment || 'This session'} vs ${c.other_environment}: ${n} session${n === 1 ? '' : 's'} of ${c.path}`));
    const fmt = (name, v) => {
      const x = Number(v);
      if (name === 'largest_response' || name === 'response_bytes') return bytes(x);
      if (name.endsWith('_ms')) return `${x.toLocaleString('en')} ms`;
      if (name.startsWith('fact:')) return v;
      return x.toLocaleString('en');
    };
    if (c.differences.length) {
      const ol = el('ol', 'differences');
      for (const d of c.differences) {
        ol.append(el('li', null, `${d.label}: ${fmt(d.name, d.this)} here, ${fmt(d.name, d.others)} in ${c.other_environment}`));
      }
      li.append(el('p', null, 'Differs most:'), ol);
    } else {
      li.append(el('p', null, 'Nothing differs much.'));
    }
    const table = el('table', 'env-compare');
    const head = el('tr');
    for (const h of ['', 'This session', ...c.peers.map((p) => `${c.other_environment} ${p.id.slice(0, 8)}`)]) head.append(el('th', null, h));
    table.append(head);
    const all = [c.session, ...c.peers];
    const largest = (p) => (p.largest_responses[0] ? `${bytes(p.largest_responses[0].bytes)} ${p.largest_responses[0].url}` : '—');
    /** @type {Array<[string, (p: any) => string]>} */
    const rows = [
      ['DOM size', (p) => `${p.dom_nodes.toLocaleString('en')} nodes`],
      ['Mutation volume', (p) => p.mutations.toLocaleString('en')],
      ['Requests', (p) => `${p.requests} (${bytes(p.response_bytes)})`],
      ['Largest response', largest],
      ['Long frames', (p) => `${p.long_frames} (${p.long_frame_ms} ms)`],
      ['Freezes', (p) => `${p.freezes} (${p.freeze_ms} ms)`],
      ['Errors', (p) => String(p.errors)],
    ];
    const factNames = new Set(all.flatMap((p) => Object.keys(p.facts)));
    for (const f of factNames) rows.push([f, (p) => p.facts[f] || '—']);
    const differs = new Set(c.differences.map((d) => d.label));
    for (const [label, get] of rows) {
      const tr = el('tr', differs.has(label) ? 'unusual' : '');
      tr.append(el('th', null, label));
      for (const p of all) tr.append(el('td', null, get(p)));
      table.append(tr);
    }
    li.append(table);
    lists.environment.prepend(li);
    const tab = root.querySelector('[data-tab="environment"]');
    if (tab && c.differences.length) tab.dataset.differences = String(c.differences.length);
  }

  return { add, follow, show, compare, symbolicate, sideBySide };
}

/** A value is unusual when fewer than this share of at least this many sessions have it. */
const UNUSUAL_SHARE = 0.1;
const UNUSUAL_MIN_SESSIONS = 5;
