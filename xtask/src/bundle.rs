//! The recorder as one module: `target/web/recorder/core.js`, what the loader imports; and its
//! wasm, optimized ([`optimize_wasm`]).
//!
//! `core.js` and everything it imports (found through its imports, so a new module is picked up
//! by itself; the wasm-bindgen glue from the staging folder) are bundled and minified by the
//! pinned esbuild (`tools/js/package-lock.json`, installed by `npm ci` into `target/jstools/`).
//! Two things are put into the staged sources first:
//!
//! - the upload worker's classic script (`upload-worker.js` with `upload-core.js` inlined,
//!   minified) as a string, in place of `upload-worker-source.js`: the page starts the worker
//!   from a blob of it, so the worker costs no request of its own;
//! - three functions appended to the wasm-bindgen glue ([`RENEW`]), which let `core.js` move the
//!   recorder to a fresh instance of the compiled module when the old one's memory grew
//!   (`recorder/src/renew.rs` says why); the glue keeps its instance in module variables that
//!   only code inside it can reach.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The module the recorder's modules import the upload worker's source from: in `recorder/js/`
/// it holds an empty string (no worker: uploads run on the main thread).
const WORKER_SOURCE_MODULE: &str = "upload-worker-source.js";

/// Appended to the recorder's wasm-bindgen glue (`recorder_wasm.js`), whose `wasm`,
/// `wasmModule`, `__wbg_init_promise`, `__wbg_get_imports` and `__wbg_finalize_init` it uses
/// (checked to be there).
const RENEW: &str = "
// Appended by `cargo xtask build-web` (xtask/src/bundle.rs): a fresh instance of the compiled
// module, and the switch to it (recorder/src/renew.rs).
export function __replay_memory_bytes() { return wasm.memory.buffer.byteLength; }
export function __replay_instantiate() { return WebAssembly.instantiate(wasmModule, __wbg_get_imports()); }
// The old exports must not stay reachable (through the init promise), or the old memory does.
export function __replay_switch(instance) {
  wasm = undefined;
  __wbg_init_promise = undefined;
  __wbg_finalize_init(instance, wasmModule);
}
";

/// The typings of [`RENEW`], appended to the glue's (for the JS type check).
pub const RENEW_TYPES: &str = "
/** Bytes of the current instance's linear memory (appended by xtask/src/bundle.rs). */
export function __replay_memory_bytes(): number;
/** A fresh instance of the compiled module, not yet in use. */
export function __replay_instantiate(): Promise<WebAssembly.Instance>;
/** Makes `instance` the one every binding calls; objects of the old one must be freed first. */
export function __replay_switch(instance: WebAssembly.Instance): void;
";

/// Optimizes the recorder's wasm (`from`, as wasm-bindgen wrote it) into `to` with the pinned
/// binaryen's `wasm-opt` (`tools/js/package.json`), run by node from `target/jstools/`: nothing
/// is downloaded at build time.
///
/// `-O3`, not `-Oz`: on the recorder's wasm both take off about 10% raw and 3% gzipped
/// (126,940 -> 116,109 and 114,482 bytes; 47,748 -> 46,287 and 46,260 gzipped), and the
/// recorder's main-thread time matters more than 27 bytes. `--converge` repeats the passes
/// until they change nothing more (164 bytes gzipped off 38,370). The target-features section,
/// which only tools read, goes too.
pub fn optimize_wasm(from: &Path, to: &Path) -> Result<()> {
    let tools = crate::js_tools()?;
    let out = from.with_extension("opt.wasm");
    let mut c = Command::new("node");
    c.arg(tools.join("node_modules/binaryen/bin/wasm-opt"))
        .arg(from)
        .args(["-O3", "--converge", "--strip-debug", "--strip-producers", "--strip-target-features", "-o"])
        .arg(&out);
    crate::status(c)?;
    let optimized = std::fs::read(&out).with_context(|| format!("reading {}", out.display()))?;
    std::fs::remove_file(&out).with_context(|| format!("removing {}", out.display()))?;
    crate::write_if_changed(to, &optimized)
}

/// Bundles the recorder from the sources in `js` (copied to `staging`, which already holds the
/// wasm-bindgen glue) into `out/core.js`.
pub fn recorder(js: &Path, staging: &Path, out: &Path) -> Result<()> {
    for entry in std::fs::read_dir(js).with_context(|| format!("reading {}", js.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if name.ends_with(".js") {
            crate::copy_if_changed(&path, &staging.join(name))?;
        }
    }
    let worker = crate::minify_js(&crate::classic_script(js, "upload-worker.js")?, "upload-worker.js", false)?;
    let literal = serde_json::to_string(&worker).context("the worker's source as a string")?;
    std::fs::write(
        staging.join(WORKER_SOURCE_MODULE),
        format!("/** Built by `cargo xtask build-web`. */\nexport const WORKER_SOURCE = {literal};\n"),
    )?;
    let glue = staging.join("recorder_wasm.js");
    let mut source = std::fs::read_to_string(&glue).with_context(|| format!("reading {}", glue.display()))?;
    for needed in [
        "let wasmModule, wasmInstance, wasm;",
        "let __wbg_init_promise;",
        "function __wbg_get_imports()",
        "function __wbg_finalize_init(",
    ] {
        if !source.contains(needed) {
            bail!("the wasm-bindgen glue changed: `{needed}` is gone (see xtask/src/bundle.rs)");
        }
    }
    source.push_str(RENEW);
    std::fs::write(&glue, source)?;

    let tools = crate::js_tools()?;
    let mut c = Command::new("node");
    c.arg(tools.join("node_modules/esbuild/bin/esbuild"))
        .arg(staging.join("core.js"))
        .args([
            "--bundle",
            "--format=esm",
            "--minify",
            "--charset=utf8",
            "--legal-comments=none",
            "--log-level=warning",
        ])
        .arg(format!("--outfile={}", staging.join("bundle.js").display()));
    crate::status(c)?;
    let built = std::fs::read(staging.join("bundle.js")).context("reading the recorder's bundle")?;
    crate::write_if_changed(&out.join("core.js"), &built)
}
