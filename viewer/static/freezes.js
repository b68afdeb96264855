// The freeze explanation panel: for every freeze of the session, how long the page was frozen,
// what the user did just before, the culprit (function, file:line) and which scripts ran.
// Built from the engine's entries (viewer/src/entries.rs): a `freeze` `start` (the worker's
// marker, with the URL and the user's last action), an `end` (duration and scripts from Long
// Animation Frames and sampled stacks), the clicks and navigations before it. A start without
// an end means the page never answered again: the tab was closed or killed while frozen.
// Recorded strings are inserted as text only. No imports: the exported file loads each module
// from a data: URL, where relative imports cannot resolve.

function fmtTime(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
};

/** `file:line:column`, `file @char N` or the file alone. */
export function place(s) {
  if (!s.source) return '';
  if (s.line) return `${s.source}:${s.line}:${s.column}`;
  if (s.charPos >= 0) return `${s.source} @char ${s.charPos}`;
  return s.source;
}

// Culprits read through the release's source maps
// (`GET /api/v1/projects/{project}/sessions/{id}/symbolicated`), by the key the server gives
// them: `source|line|column|charPos|fn`. Bounded by the server.
const originals = new Map();

/** The key of a script entry in the symbolicated answer. */
export function scriptKey(s) {
  return `${s.source}|${s.line}|${s.column}|${s.charPos}|${s.fn}`;
}

/** The original frame of a script, when a source map gave one. */
export function originalOf(s) {
  return originals.get(scriptKey(s)) || null;
}

/** Keeps the original frames of culprit scripts (the server's `scripts` list). */
export function setOriginals(scripts) {
  for (const s of scripts || []) originals.set(s.key, s.original);
}

/** `function (file:line)` of a script, as the timeline and the panel show it: the original
 * function and file when a source map gave them. */
export function culprit(s) {
  const o = originalOf(s);
  if (o) return `${o.function} (${o.file}:${o.line}:${o.column})`;
  const name = s.fn || s.invoker || '(anonymous)';
  const where = place(s);
  return where ? `${name} (${where})` : name;
}

/** Lines of original source around a frame's line, the line itself marked. */
export function contextText(o) {
  if (!o || !o.context || !o.context.length) return '';
  const width = String(o.context_start + o.context.length - 1).length;
  return o.context.map((l, i) => {
    const n = o.context_start + i;
    return `${n === o.line ? '>' : ' '} ${String(n).padStart(width)} | ${l}`;
  }).join('\n');
}

const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

/** Pairs freeze starts and ends in time order; each with the user's actions before it. */
export function freezesOf(entries) {
  const out = [];
  let open = null;
  const actions = [];
  for (const e of entries) {
    if (e.k === 'click' || e.k === 'nav' || e.k === 'page') { actions.push(e); continue; }
    if (e.k !== 'freeze') continue;
    if (e.phase === 'start') {
      open = { start: e, end: null, from: e.t, before: actions.slice(-3) };
      out.push(open);
    } else if (open && !open.end) {
      open.end = e;
      open = null;
    } else {
      out.push({ start: null, end: e, from: e.t - e.duration, before: actions.filter((a) => a.t <= e.t - e.duration).slice(-3) });
    }
  }
  return out;
}

function describeAction(a, at) {
  const ago = `${secs(Math.max(0, at - a.t))} before`;
  if (a.k === 'click') return `click at ${a.x}, ${a.y} (${ago})`;
  return `opened ${a.url} (${ago})`;
}

/** The panel in `list`; `player` gives `start()` and `seek(ms)`. */
export function createFreezePanel(list, player) {
  function card(f, i) {
    const li = el('li', 'entry freeze-card level-error');
    li.dataset.t = String(f.from);
    li.dataset.freeze = String(i);
    const head = el('p', 'freeze-head');
    const at = fmtTime(f.from - player.start());
    if (f.end) {
      head.textContent = `Froze for ${secs(f.end.duration)} at ${at}`;
    } else {
      head.textContent = `Froze at ${at} and never recovered`;
      li.classList.add('never-recovered');
    }
    li.append(head);
    const dl = el('dl');
    const row = (k, v) => dl.append(el('dt', null, k), el('dd', null, v));
    const action = f.start && f.start.action;
    const lastClick = f.before.filter((a) => a.k === 'click').pop();
    const did = action || (lastClick ? describeAction(lastClick, f.from) : '');
    row('Just before', did || 'no user action recorded');
    if (f.start && f.start.url) row('Page', f.start.url);
    if (f.end) {
      const scripts = f.end.scripts;
      row('Culprit', scripts.length ? culprit(scripts[0]) : 'unknown (the browser reported no script)');
      const original = scripts.length ? originalOf(scripts[0]) : null;
      if (original) {
        const dd = el('dd');
        dd.append(el('pre', 'stack source-context', contextText(original)));
        const minified = place(scripts[0]);
        if (minified) dd.append(el('span', 'minified', `minified: ${scripts[0].fn || scripts[0].invoker || '(anonymous)'} (${minified})`));
        dl.append(el('dt', null, 'Source'), dd);
      }
      if (scripts.length) {
        const ol = el('ol', 'scripts');
        for (const s of scripts) {
          const extra = s.layout ? `, forced layout ${s.layout} ms` : '';
          const via = s.invoker && s.fn ? ` via ${s.invoker}` : '';
          ol.append(el('li', null, `${culprit(s)}${via}: ${s.duration} ms${extra}`));
        }
        dl.append(el('dt', null, 'Scripts that ran'), Object.assign(el('dd'), {}));
        dl.lastChild.append(ol);
      }
    } else {
      row('How long', 'the page never answered again: the tab was closed or killed while frozen');
    }
    li.append(dl);
    li.addEventListener('click', () => player.seek(f.from - player.start()));
    return li;
  }

  let last = [];

  /** Rebuilds the panel from all entries so far; returns the number of freezes. */
  function update(entries) {
    last = entries;
    const freezes = freezesOf(entries);
    list.replaceChildren(...freezes.map(card));
    if (!freezes.length) list.append(el('li', 'entry', 'No freeze in this session.'));
    return freezes.length;
  }

  /** Highlights the freeze starting at `t` (epoch ms). */
  function select(t) {
    for (const li of list.children) li.classList.toggle('current', li.dataset.t === String(t));
  }

  /** Shows the culprits read through source maps (the symbolicated answer). */
  function symbolicate(data) {
    setOriginals(data.scripts);
    return update(last);
  }

  return { update, select, symbolicate };
}
