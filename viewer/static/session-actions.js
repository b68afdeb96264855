// The player's actions on the session itself, apart from playing it: points the "Delete…" link
// at the server's confirmation page for the session on screen, next to the player in its
// project (/viewer/p/{project}/delete?session=), which holds the form that deletes it (see
// server/src/deletion.rs; owners only, the page answers 403 to others).
const params = new URLSearchParams(location.search);
const link = document.getElementById('delete-session');
const session = params.get('session');
if (link instanceof HTMLAnchorElement && session && location.pathname.startsWith('/viewer/p/')) {
  link.href = `delete?${new URLSearchParams({ session })}`;
  link.hidden = false;
}
