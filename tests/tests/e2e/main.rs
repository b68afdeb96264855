//! The end-to-end tests, one binary: the real `replay-server` binary, real Chromium through
//! chromedriver, and for the scale-out storage real PostgreSQL and an S3-compatible store. The
//! harness they share is the `replay_e2e` library (`tests/src/`).
//!
//! - [`canvas`]: 2D and WebGL canvases recorded as frames (opted in by the project), replayed
//!   pixel for pixel; opted-out and masked canvases never recorded; the byte budget;
//! - [`clickmap`]: 20 sessions of one page clicking and scrolling known amounts; the click map
//!   page's badges and scroll map show exactly that (screenshot in `target/clickmap.png`);
//! - [`demo`]: the demo app recorded end to end, checked through the snapshot API and the viewer;
//! - [`comments`]: comments on a moment (timeline markers, the panel, read-only members) and
//!   share links of a moment, 404 to other projects' users;
//! - [`compare`]: the demo recorded as staging (50 products) and production (50,000): the
//!   comparison names the DOM size and the freeze;
//! - [`delivery`]: an outage, a reload, a closed tab, buffer mode, sampling, SIGTERM and SIGKILL
//!   while sessions stream — nothing acknowledged is lost;
//! - [`diagnostics`]: freezes (recovered and never recovered), console, errors, network and
//!   environment, in the stored session and the viewer's panels;
//! - [`engines`]: the freeze watchdog as every engine must run it (no Long Animation Frames or
//!   profiler outside Chromium); CI runs it with the core subset in Chromium, Firefox and WebKit;
//! - [`frustration`]: a dead button, a throwing one and a navigation undone, each flagged and
//!   filterable;
//! - [`fidelity`]: each page of `fixtures/fidelity/` compared with its replay, DOM and pixels;
//! - [`frames`]: a cross-origin frame with the recorder replays inside its parent, one without
//!   shows a placeholder (URL and size), a hello from the wrong origin is refused;
//! - [`hostile`]: hostile pages are recorded with bounded, throttled output;
//! - [`hostile_replay`]: a benchmark (ignored by default): hostile recordings through the
//!   snapshot API and the wasm player;
//! - [`ingest_rejections`]: bad input gets its 4xx and stores nothing;
//! - [`module_entry`]: the recorder's ES module entry, imported like an app's bundle would;
//! - [`npm_app`]: the npm package installed, type-checked and bundled by a sample app (`cargo
//!   xtask npm-app`), recorded with every option;
//! - [`oidc`]: single sign-on at a certified OpenID Connect provider (`oidc-provider`, pinned
//!   in `tests/oidc/`): the right accounts in, unknown, disabled, unverified, forged and replayed
//!   sign-ins refused;
//! - [`privacy`]: typed secrets never leave the page, and each opt-in reveals only what it names;
//! - [`projects`]: projects kept apart in the viewer (a session id means one of its project);
//! - [`rrweb`]: a real rrweb recording replayed in our player, and our session in `rrweb-player`;
//! - [`sourcemaps`]: a minified page and its uploaded maps: original stacks, culprits and one
//!   error group across releases;
//! - [`search`]: sessions found by a clicked text, a failed request, a console message and a
//!   page sequence, in the API and the list;
//! - [`scale_out`]: PostgreSQL + S3 storage, conformance and two instances sharing one store;
//! - [`viewer`]: the player's controls, panels, export and the session list, on synthetic
//!   sessions;
//! - [`xss`]: the hostile-recording corpus of `fixtures/xss/` replayed in the player.
//!
//! All tests run as threads of this one process (as many at once as `--test-threads`, by
//! default the number of CPUs). Each starts its own servers, browser and services; the only
//! shared state is the harness's record of the ports it handed out.

mod canvas;
mod clickmap;
mod comments;
mod compare;
mod delivery;
mod demo;
mod diagnostics;
mod engines;
mod fidelity;
mod frames;
mod frustration;
mod hostile;
mod hostile_replay;
mod ingest_rejections;
mod long_session;
mod module_entry;
mod network;
mod npm_app;
mod oidc;
mod privacy;
mod projects;
mod rrweb;
mod scale_out;
mod search;
mod sourcemaps;
mod teams;
mod valve;
mod viewer;
mod xss;
