// Comments on the session at a moment (server/src/comments.rs): listed in the Comments panel,
// drawn as timeline markers by player.js, added at the current moment by members and owners
// (read-only members see them, without the form), deleted by their author or an owner. They
// are read and written through the project's API with the viewer's login cookie (the POST is
// JSON, which a page of another site cannot send without asking first). Every string a
// comment holds is inserted as text, never as HTML.

/** Longest comment, in characters (the server's MAX_COMMENT_CHARS). */
export const MAX_COMMENT_CHARS = 2000;

const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
};

/** The error message of a refused request (the server's JSON error body), or its status. */
async function refusal(res) {
  try {
    const body = await res.json();
    if (body && body.error && body.error.message) return String(body.error.message);
  } catch { /* not JSON */ }
  return `the server answered ${res.status}`;
}

/**
 * The Comments panel in `panel` (its form `#comment-form` and list `#comment-list`). `player`
 * gives `api(tail)` (the session's API URL plus `tail`), `position()` (ms from the start),
 * `seek(ms)`, `fmtTime(ms)` and `changed()` (called when the comments change: redraw markers).
 */
export function createComments(panel, player) {
  const form = /** @type {HTMLFormElement} */ (panel.querySelector('#comment-form'));
  const input = /** @type {HTMLTextAreaElement} */ (panel.querySelector('#comment-text'));
  const at = panel.querySelector('#comment-at');
  const status = panel.querySelector('#comment-status');
  const list = panel.querySelector('#comment-list');
  const count = document.querySelector('[data-tab="comments"] .count');
  let comments = [];
  let loaded = false;

  function render() {
    const rows = comments.map((c) => {
      const li = el('li', 'entry comment');
      li.dataset.t = String(c.t);
      li.dataset.id = String(c.id);
      li.append(el('time', 'at', player.fmtTime(c.t)), el('span', 'author', c.author), el('span', 'msg', c.text));
      if (c.can_delete) {
        const del = el('button', 'delete-comment', 'Delete');
        /** @type {HTMLButtonElement} */ (del).type = 'button';
        del.addEventListener('click', (ev) => { ev.stopPropagation(); remove(c.id); });
        li.append(del);
      }
      li.addEventListener('click', () => player.seek(c.t));
      return li;
    });
    list.replaceChildren(...rows);
    if (!rows.length) list.append(el('li', 'empty', 'No comments yet.'));
    if (count) count.textContent = comments.length ? String(comments.length) : '';
    player.changed();
  }

  async function load() {
    const res = await fetch(player.api('/comments'), { credentials: 'same-origin' });
    if (!res.ok) { status.textContent = `Could not load the comments: ${await refusal(res)}`; return; }
    const body = await res.json();
    comments = Array.isArray(body.comments) ? body.comments : [];
    form.hidden = !body.can_add;
    loaded = true;
    document.body.dataset.comments = 'loaded';
    render();
  }

  async function add(text) {
    const t = Math.max(0, Math.round(player.position()));
    const res = await fetch(player.api('/comments'), {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ t, text }),
    });
    if (!res.ok) { status.textContent = await refusal(res); return false; }
    status.textContent = '';
    await load();
    return true;
  }

  async function remove(id) {
    const res = await fetch(player.api(`/comments/${encodeURIComponent(id)}`), { method: 'DELETE', credentials: 'same-origin' });
    if (!res.ok) { status.textContent = await refusal(res); return; }
    await load();
  }

  input.maxLength = MAX_COMMENT_CHARS;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    const button = /** @type {HTMLButtonElement} */ (form.querySelector('button[type="submit"]'));
    button.disabled = true;
    try {
      if (await add(text)) input.value = '';
    } catch (e) {
      status.textContent = `Could not add the comment: ${e.message}`;
    } finally {
      button.disabled = false;
    }
  });

  return {
    load,
    add,
    /** The comments, by moment. */
    list: () => (loaded ? comments : []),
    /** Shows the moment a new comment would be at. */
    moment(ms) { if (at) at.textContent = player.fmtTime(ms); },
  };
}
