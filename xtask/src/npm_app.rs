//! `cargo xtask npm-app`: the npm package tested as users install it. The recorder is packed
//! (`cargo xtask npm`, with its `npm pack` tarball), then the sample app of `tests/npm-app/` is
//! copied to `target/npm-app/`, installs the tarball with npm (offline: the package has no
//! dependencies), is type-checked with the pinned TypeScript against the package's typings
//! (strict, the typings included) and bundled with the pinned esbuild into
//! `target/npm-app/dist/`, which the e2e test `npm_app` serves and records in Chromium. Both
//! tools come from `tools/js/package-lock.json` (`npm ci` into `target/jstools/`; esbuild's
//! binary is its npm optional dependency `@esbuild/linux-x64`). `cargo xtask test` runs it first.
//!
//! esbuild bundles the JavaScript but, unlike Vite and webpack, leaves the recorder's
//! `new URL('./file', import.meta.url)` assets alone: like an esbuild user, the build copies the
//! wasm next to the bundle (the package exports it; the upload worker is inside the recorder's
//! module).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Files of the package an esbuild app must copy next to its bundle.
const ASSETS: &[&str] = &["recorder_wasm_bg.wasm"];

/// Builds the sample app; returns its `dist/` folder.
pub fn npm_app() -> Result<PathBuf> {
    crate::npm()?;
    let root = crate::root();
    let tarball = root.join(format!("target/npm/replay-recorder-{}.tgz", env!("CARGO_PKG_VERSION")));
    if !tarball.is_file() {
        bail!("{} is missing (`npm pack` needs npm on PATH)", tarball.display());
    }
    let tools = crate::js_tools()?;
    let app = root.join("target/npm-app");
    if app.exists() {
        std::fs::remove_dir_all(&app).with_context(|| format!("clearing {}", app.display()))?;
    }
    copy_tree(&root.join("tests/npm-app"), &app)?;

    // As a user would: `npm install ./replay-recorder-X.tgz` (offline: nothing else to fetch).
    let mut c = Command::new("npm");
    c.args(["install", "--offline", "--no-audit", "--no-fund", "--no-package-lock"]).arg(&tarball).current_dir(&app);
    crate::status(c)?;

    // The app against the package's typings, as strict as TypeScript goes.
    let mut c = Command::new("node");
    c.arg(tools.join("node_modules/typescript/lib/tsc.js"))
        .args(["--project", "tsconfig.json", "--pretty", "false"])
        .current_dir(&app);
    crate::status(c)?;

    let dist = app.join("dist");
    let mut c = Command::new("node");
    c.arg(tools.join("node_modules/esbuild/bin/esbuild"))
        .args([
            "src/app.ts",
            "--bundle",
            "--format=esm",
            "--target=es2022",
            "--minify",
            "--sourcemap",
            "--log-level=warning",
            "--outfile=dist/app.js",
        ])
        .current_dir(&app);
    crate::status(c)?;
    let package = app.join("node_modules/replay-recorder");
    for asset in ASSETS {
        std::fs::copy(package.join(asset), dist.join(asset)).with_context(|| format!("copying {asset}"))?;
    }
    std::fs::copy(app.join("index.html"), dist.join("index.html")).context("copying index.html")?;
    copy_tree(&app.join("public"), &dist)?;
    let bundle = std::fs::metadata(dist.join("app.js")).context("the bundle")?.len();
    eprintln!("xtask: npm sample app in {} (app.js {bundle} bytes)", dist.display());
    Ok(dist)
}

/// Copies the files of `from` into `to`, recursively (created when missing).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}
