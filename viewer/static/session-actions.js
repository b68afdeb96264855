// The player's actions on the session itself, apart from playing it: points the "Delete…" link
// at the server's confirmation page for the session on screen (and its project), which holds
// the form that deletes it (see server/src/deletion.rs).
const params = new URLSearchParams(location.search);
const link = document.getElementById('delete-session');
const session = params.get('session');
if (link instanceof HTMLAnchorElement && session) {
  const query = new URLSearchParams({ session });
  const project = params.get('project');
  if (project) query.set('project', project);
  link.href = `delete?${query}`;
  link.hidden = false;
}
