// The player's header around the session on screen, apart from playing it:
// - the project switcher: the caller's projects (from /api/v1/me), the current one selected;
//   choosing another opens that project's session list (a session id means nothing in another
//   project, so the switcher never carries it over);
// - the "Delete…" link, shown to the project's owners only, pointing at the server's
//   confirmation page for the session (/viewer/p/{project}/delete?session=), which holds the
//   form that deletes it (see server/src/deletion.rs; the page answers 403 to anyone else, so
//   hiding the link is for clarity, not protection).
const params = new URLSearchParams(location.search);
const link = document.getElementById('delete-session');
const switcher = document.getElementById('player-project');
const session = params.get('session');
const scoped = /^\/viewer\/p\/(\d+)\//.exec(location.pathname);

/** The signed-in user's projects and roles; null for a token caller or on any failure. */
async function me() {
  try {
    const res = await fetch('/api/v1/me', { credentials: 'same-origin', headers: { accept: 'application/json' } });
    if (!res.ok) return null;
    const body = await res.json();
    return Array.isArray(body?.projects) ? body.projects : null;
  } catch {
    return null;
  }
}

async function setUp() {
  if (!scoped) return;
  const current = Number(scoped[1]);
  const projects = await me();
  if (!projects) return;
  const here = projects.find((p) => p.id === current);
  if (link instanceof HTMLAnchorElement && session && here?.role === 'owner') {
    link.href = `delete?${new URLSearchParams({ session })}`;
    link.hidden = false;
  }
  if (switcher instanceof HTMLSelectElement && projects.length > 1) {
    for (const p of projects.slice(0, 1000)) {
      const option = document.createElement('option');
      option.value = String(p.id);
      option.textContent = String(p.name);
      option.selected = p.id === current;
      switcher.append(option);
    }
    switcher.addEventListener('change', () => {
      const id = Number(switcher.value);
      if (Number.isSafeInteger(id) && id !== current) location.assign(`/viewer/p/${id}/`);
    });
    switcher.closest('label')?.removeAttribute('hidden');
  }
}

// Tests wait for this before looking at the header.
setUp().finally(() => {
  document.body.dataset.header = 'ready';
});
