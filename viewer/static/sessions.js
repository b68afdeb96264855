// The session list: newest first, 50 per page. Every value is inserted as text, never as HTML.
const PAGE = 50;
let offset = Number(new URLSearchParams(location.search).get('offset')) || 0;

export function duration(ms) {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
}

function bytes(n) {
  return n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(1)} MB`;
}

function cell(tr, text, href) {
  const td = document.createElement('td');
  if (href) {
    const a = document.createElement('a');
    a.href = href;
    a.textContent = text;
    td.append(a);
  } else {
    td.textContent = text;
  }
  tr.append(td);
}

async function load() {
  const status = document.getElementById('status');
  try {
    const res = await fetch(`/api/v1/sessions?limit=${PAGE + 1}&offset=${offset}`);
    if (!res.ok) throw new Error(`the server answered ${res.status}`);
    const { sessions } = await res.json();
    const tbody = document.querySelector('#sessions tbody');
    tbody.replaceChildren();
    for (const s of sessions.slice(0, PAGE)) {
      const tr = document.createElement('tr');
      const href = `player.html?session=${encodeURIComponent(s.id)}`;
      cell(tr, new Date(s.start_ms).toLocaleString(), href);
      cell(tr, duration(s.duration_ms));
      cell(tr, s.url || '(unknown)');
      cell(tr, String(s.pages));
      cell(tr, String(s.clicks));
      cell(tr, String(s.events));
      cell(tr, bytes(s.bytes));
      cell(tr, String(s.dropped));
      tbody.append(tr);
    }
    document.getElementById('sessions').hidden = sessions.length === 0;
    status.textContent = sessions.length ? '' : 'No sessions recorded yet. Open the demo app at /demo and click around.';
    const prev = document.getElementById('prev');
    const next = document.getElementById('next');
    prev.disabled = offset === 0;
    next.disabled = sessions.length <= PAGE;
    prev.onclick = () => { offset = Math.max(0, offset - PAGE); load(); };
    next.onclick = () => { offset += PAGE; load(); };
  } catch (e) {
    status.textContent = `Could not load sessions: ${e.message}`;
  }
}

load();
