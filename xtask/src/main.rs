//! `cargo xtask <command>`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `build-web`: compile the recorder and viewer to wasm32 (adding the rustup target when
//!   missing), run wasm-bindgen through the pinned `wasm-bindgen-cli-support` library (no
//!   downloaded binaries), optimize the recorder's wasm with the pinned binaryen's `wasm-opt`
//!   (an npm package), and lay the files out in `target/web/` for the server to embed: the
//!   loader (a classic script assembled from its ES module), the recorder as one module bundled
//!   by the pinned esbuild with the upload worker's script inside, and the viewer's JavaScript,
//!   all minified;
//! - `run [server args]`: build-web, build the server, start it on the embedded default storage;
//! - `test`: install Chromium and ChromeDriver (and Firefox ESR, WebKitGTK's WebDriver, Xvfb)
//!   through apt when missing, build everything, run every test of the workspace (unit,
//!   integration, end-to-end in real Chromium), then the core end-to-end subset in Firefox and
//!   WebKit (`engines.rs`);
//! - `bench`: build, then run the shared benchmark with our adapter against rrweb; `bench-ingest`
//!   and `bench-hostile` build the server and run `bench/ingest` or `bench/hostile` against it;
//! - `lint`: rustfmt, clippy (host and wasm32), build-web, and the JS type check (TypeScript's
//!   checker on the JSDoc-typed sources and the recorder's typings);
//! - `npm`: the recorder as an npm package; `npm-app`: the sample app that installs it, type-checked
//!   and bundled (`npm_app.rs`), which `test` builds for its end-to-end test;
//! - `size [--no-build]`: every file the recorder's script tag loads, raw and gzip bytes, and
//!   the totals (`size.rs`);
//! - `container`: the server's container image, built with buildah and checked with podman;
//! - `docs [--write]`: the book in `docs/` rendered to `target/docs/`, failing on a broken link or
//!   a generated table out of date (the server's settings, the recorder's options: `options.rs`);
//!   `--write` regenerates them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod bundle;
mod codemap;
mod container;
mod docs;
mod engines;
mod npm_app;
mod oidc;
mod options;
mod size;

const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The cargo profile of the server binary used by `run`, the tests and the benchmarks.
const SERVER_PROFILE: &str = "server";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args.split_first().map_or(("help", &[][..]), |(c, r)| (c.as_str(), r));
    match cmd {
        "build-web" => build_web(),
        "build" => build_all().map(|_| ()),
        "run" => run(rest),
        "test" => test(rest),
        "bench" => bench(rest),
        "bench-ingest" => bench_ingest(rest),
        "bench-hostile" => bench_hostile(rest),
        "lint" => lint(),
        "npm" => npm(),
        "size" => size::size(rest),
        "npm-app" => npm_app::npm_app().map(|_| ()),
        "container" => container::container(rest),
        "docs" => {
            let write = rest.iter().any(|a| a == "--write");
            if write {
                write_generated_docs()?;
            }
            options::check(&root(), write)?;
            docs::docs()
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 run [--listen ADDR] [--data-dir DIR]   build and start the server (viewer + demo)\n  \
                 test [cargo test args]                 the whole test suite (installs chromium when missing)\n  \
                 bench [run.sh args]                    the shared benchmark against rrweb\n  \
                 bench-ingest [--sessions N] [--seconds S] [--rounds R] [--postgres]  ingest load vs a no-op axum endpoint (and the PostgreSQL scale-out)\n  \
                 bench-hostile [--seconds S] [--attack A]  legitimate sessions' latency and server memory under attack\n  \
                 build-web                              the recorder and viewer wasm into target/web\n  \
                 build                                  build-web plus the server binary\n  \
                 npm                                    the recorder as an npm package in target/npm\n  \
                 size [--no-build]                      what the recorder tag downloads: each file, raw and gzip\n  \
                 npm-app                                the sample app installing it, type-checked and bundled\n  \
                 container [--check]                    the server's OCI image (buildah); --check runs it with podman\n  \
                 docs [--write]                         the book in docs/ rendered to target/docs, links checked\n  \
                                                        (--write: regenerate the settings and options tables)\n  \
                 lint                                   rustfmt, clippy (host and wasm32), JS build and type check"
            );
            if cmd == "help" { Ok(()) } else { bail!("unknown command {cmd:?}") }
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn status(mut c: Command) -> Result<()> {
    let shown = format!("{c:?}");
    let st = c.status().with_context(|| format!("starting {shown}"))?;
    if !st.success() {
        bail!("{shown} failed with {st}");
    }
    Ok(())
}

fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match out {
        Ok(o) if String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == WASM_TARGET) => Ok(()),
        Ok(_) => {
            eprintln!("xtask: adding rustup target {WASM_TARGET}");
            let mut c = Command::new("rustup");
            c.args(["target", "add", WASM_TARGET]);
            status(c)
        }
        // No rustup: trust that the toolchain has the target (the build says otherwise if not).
        Err(_) => Ok(()),
    }
}

/// Builds the recorder and viewer wasm and writes `target/web/` (the viewer's pages in
/// `target/web/viewer-static/`) and the glue's typings in `target/web-types/`.
pub(crate) fn build_web() -> Result<()> {
    ensure_wasm_target()?;
    let mut c = cargo();
    c.args(["build", "--release", "--target", WASM_TARGET, "-p", "replay-recorder", "-p", "replay-viewer"]);
    status(c)?;
    let root = root();
    let wasm_dir = root.join("target").join(WASM_TARGET).join("release");
    let web = root.join("target").join("web");
    // The recorder's wasm-bindgen glue goes to the staging folder its bundle is made from (it
    // is bundled, not served); the viewer's is served as it is.
    let staging = root.join("target").join("web-src").join("recorder");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("clearing {}", staging.display()))?;
    }
    for (crate_lib, out_dir) in [("recorder_wasm", staging.clone()), ("viewer_wasm", web.join("viewer"))] {
        std::fs::create_dir_all(&out_dir)?;
        let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
        bindgen
            .input_path(wasm_dir.join(format!("{crate_lib}.wasm")))
            .web(true)?
            .omit_default_module_path(false)
            .remove_name_section(true)
            .remove_producers_section(true)
            .typescript(true)
            .generate(&out_dir)
            .with_context(|| format!("wasm-bindgen on {crate_lib}"))?;
    }
    let served = web.join("recorder");
    std::fs::create_dir_all(&served)?;
    let wasm = staging.join("recorder_wasm_bg.wasm");
    bundle::optimize_wasm(&wasm, &served.join("recorder_wasm_bg.wasm"))?;
    std::fs::remove_file(&wasm).with_context(|| format!("removing {}", wasm.display()))?;
    // The typings of the wasm-bindgen glue are for the JS type check (`lint`) only: they go to
    // `target/web-types/`, not into what is served or packaged.
    let types = root.join("target").join("web-types");
    std::fs::create_dir_all(&types)?;
    for dir in [staging.clone(), web.join("viewer")] {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            if name.ends_with(".d.ts") && name.contains("_wasm") {
                let mut typings = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                if name == "recorder_wasm.d.ts" {
                    typings.extend_from_slice(bundle::RENEW_TYPES.as_bytes());
                }
                write_if_changed(&types.join(name), &typings)?;
                std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    // What ships into customers' pages, minified: the loader (served at /recorder.js), the
    // recorder as one module (`recorder/core.js`, see `bundle.rs`), its wasm, and the
    // module entry `recorder/index.js` (a few lines over core.js).
    let js = root.join("recorder/js");
    write_if_changed(
        &web.join("recorder.js"),
        minify_js(&classic_script(&js, "loader.js")?, "loader.js", false)?.as_bytes(),
    )?;
    let index = std::fs::read_to_string(js.join("index.js")).context("reading recorder/js/index.js")?;
    write_if_changed(&served.join("index.js"), minify_js(&index, "index.js", true)?.as_bytes())?;
    bundle::recorder(&js, &staging, &served)?;
    // The recorder's typings (the npm package's `types`), kept apart from the sources so that the
    // type check compares `index.js` with `index.d.ts` instead of reading one for the other.
    let typings = js.join("types");
    let mut kept = vec!["core.js".to_owned(), "index.js".to_owned(), "recorder_wasm_bg.wasm".to_owned()];
    for entry in std::fs::read_dir(&typings).with_context(|| format!("reading {}", typings.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if name.ends_with(".d.ts") {
            copy_if_changed(&path, &served.join(name))?;
            kept.push(name.to_owned());
        }
    }
    // Whatever an earlier layout left there would be embedded and served: it goes.
    for entry in std::fs::read_dir(&served).with_context(|| format!("reading {}", served.display()))? {
        let path = entry?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| !kept.iter().any(|k| k == n)) {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    let glue = web.join("viewer").join("viewer_wasm.js");
    let source = std::fs::read_to_string(&glue).with_context(|| format!("reading {}", glue.display()))?;
    write_if_changed(&glue, minify_js(&source, &glue.display().to_string(), true)?.as_bytes())?;
    viewer_static(&root, &web.join("viewer-static"))
}

/// The viewer's pages into `out` (embedded by the server, served under `/viewer/`): its modules
/// minified, the other files (HTML, CSS) as they are. Files no longer in `viewer/static/` go.
fn viewer_static(root: &Path, out: &Path) -> Result<()> {
    let pages = root.join("viewer/static");
    std::fs::create_dir_all(out)?;
    let mut written = Vec::new();
    for entry in std::fs::read_dir(&pages).with_context(|| format!("reading {}", pages.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        if !path.is_file() {
            continue;
        }
        if name.ends_with(".js") {
            let source = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            write_if_changed(&out.join(&name), minify_js(&source, &name, true)?.as_bytes())?;
        } else {
            copy_if_changed(&path, &out.join(&name))?;
        }
        written.push(name);
    }
    for entry in std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))? {
        let path = entry?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| !written.iter().any(|w| w == n)) {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// A classic script (the loader, the upload worker) from an ES module of `dir`, so that one
/// source serves both: the modules it imports from `dir` are inlined (their `export` keywords
/// dropped) and the whole is wrapped in a strict function, whose names stay private and can be
/// shortened. Only `export` declarations (`export function`, `export const`) are supported in
/// inlined modules, and they may not import anything themselves; whatever import or export
/// is left makes the script fail to parse in `minify_js`.
fn classic_script(dir: &Path, entry: &str) -> Result<String> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let source = read(entry)?;
    let allocator = oxc_allocator::Allocator::default();
    let program = parse(&allocator, &source, entry, true)?;
    let mut inlined = String::new();
    let mut body = String::new();
    let mut from = 0;
    for statement in &program.body {
        if let oxc_ast::ast::Statement::ImportDeclaration(import) = statement {
            let module = import.source.value.as_str();
            let Some(name) = module.strip_prefix("./") else { bail!("{entry}: only ./ imports can be inlined") };
            inlined.push_str(&module_body(name, &read(name)?)?);
            inlined.push('\n');
            body.push_str(&source[from..import.span.start as usize]);
            from = import.span.end as usize;
        }
    }
    body.push_str(&source[from..]);
    Ok(format!("'use strict';(() => {{\n{inlined}{body}\n}})();\n"))
}

/// A module's source with its `export` keywords dropped (see `classic_script`).
fn module_body(name: &str, source: &str) -> Result<String> {
    use oxc_ast::ast::Statement;
    use oxc_span::GetSpan;
    let allocator = oxc_allocator::Allocator::default();
    let program = parse(&allocator, source, name, true)?;
    let mut out = String::new();
    let mut from = 0;
    for statement in &program.body {
        match statement {
            Statement::ExportDeclaration(export) => {
                let declaration = export.declaration.span();
                out.push_str(&source[from..export.span.start as usize]);
                from = declaration.start as usize;
            }
            s if s.is_module_declaration() => bail!("{name}: only `export` declarations can be inlined"),
            _ => {}
        }
    }
    out.push_str(&source[from..]);
    Ok(out)
}

/// Minifies JavaScript (a module or a classic script): comments and whitespace go, local names
/// are shortened, constant expressions folded. Exported names stay as they are.
fn minify_js(source: &str, name: &str, module: bool) -> Result<String> {
    let allocator = oxc_allocator::Allocator::default();
    let mut program = parse(&allocator, source, name, module)?;
    let minified =
        oxc_minifier::Minifier::new(oxc_minifier::MinifierOptions::default()).minify(&allocator, &mut program);
    let code = oxc_codegen::Codegen::new()
        .with_options(oxc_codegen::CodegenOptions::minify())
        .with_scoping(minified.scoping)
        .with_private_member_mappings(minified.class_private_mappings)
        .build(&program)
        .code;
    Ok(code)
}

/// Parses JavaScript, a module or a classic script; any syntax error fails.
fn parse<'a>(
    allocator: &'a oxc_allocator::Allocator,
    source: &'a str,
    name: &str,
    module: bool,
) -> Result<oxc_ast::ast::Program<'a>> {
    let source_type = if module { oxc_span::SourceType::mjs() } else { oxc_span::SourceType::script() };
    let parsed = oxc_parser::Parser::new(allocator, source, source_type).parse();
    if parsed.panicked || parsed.diagnostics.has_errors() {
        let errors: Vec<String> = parsed.diagnostics.errors().map(|e| e.to_string()).collect();
        bail!("{name} does not parse: {}", errors.join("; "));
    }
    Ok(parsed.program)
}

fn write_if_changed(to: &Path, data: &[u8]) -> Result<()> {
    if std::fs::read(to).ok().as_deref() != Some(data) {
        std::fs::write(to, data).with_context(|| format!("writing {}", to.display()))?;
    }
    Ok(())
}

/// The recorder as an npm package: `target/npm/replay-recorder/` (the built modules, the wasm,
/// `index.js` as the entry, types) and, when npm is installed, its `npm pack` tarball.
fn npm() -> Result<()> {
    build_web()?;
    let root = root();
    let built = root.join("target/web/recorder");
    let out = root.join("target/npm/replay-recorder");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(&out)?;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&built).with_context(|| format!("reading {}", built.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        std::fs::copy(&path, out.join(&name)).with_context(|| format!("copying {name}"))?;
        files.push(name);
    }
    files.sort();
    let version = env!("CARGO_PKG_VERSION");
    let package = format!(
        r#"{{
  "name": "replay-recorder",
  "version": "{version}",
  "description": "Session replay recorder: records the DOM, input, console, errors, network and freezes of a web app for the replay server",
  "license": "Apache-2.0",
  "type": "module",
  "main": "./index.js",
  "module": "./index.js",
  "types": "./index.d.ts",
  "exports": {{
    ".": {{ "types": "./index.d.ts", "default": "./index.js" }},
    "./recorder_wasm_bg.wasm": "./recorder_wasm_bg.wasm",
    "./package.json": "./package.json"
  }},
  "keywords": ["session-replay", "recorder", "rum", "debugging", "wasm"],
  "sideEffects": false,
  "files": [{}]
}}
"#,
        files.iter().map(|f| format!("\"{f}\"")).collect::<Vec<_>>().join(", ")
    );
    std::fs::write(out.join("package.json"), package)?;
    std::fs::write(
        out.join("README.md"),
        "# replay-recorder\n\n```js\nimport { init, identify } from 'replay-recorder';\n\n\
         await init({ server: 'https://replay.example.com/', key: 'INGEST_KEY' });\n\
         identify('user@example.com');\n```\n\nThe same recorder as the script tag \
         (`<script src=\"https://replay.example.com/recorder.js\" data-key=\"INGEST_KEY\" defer>`); \
         options and API in `index.d.ts`. The wasm is loaded with `new URL(..., import.meta.url)`, \
         which Vite and webpack 5 copy as an asset by themselves; with esbuild, copy \
         `replay-recorder/recorder_wasm_bg.wasm` next to your bundle (it is exported).\n",
    )?;
    eprintln!("xtask: npm package in {}", out.display());
    if which("npm") {
        let mut c = Command::new("npm");
        c.args(["pack", "--pack-destination", ".."]).current_dir(&out);
        status(c)?;
    }
    Ok(())
}

/// Regenerates what the docs hold that is generated from the code: the settings table of
/// `docs/src/configuration.md` (written by the server's own test of it, which otherwise fails
/// when the table is out of date).
fn write_generated_docs() -> Result<()> {
    let mut c = cargo();
    c.args([
        "test",
        "-p",
        "replay-server",
        "--lib",
        "config::settings::tests::the_docs_reference_table_is_the_settings_list",
    ])
    .env("REPLAY_WRITE_DOCS", "1");
    status(c)
}

fn copy_if_changed(from: &Path, to: &Path) -> Result<()> {
    let data = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    if std::fs::read(to).ok().as_deref() != Some(&data[..]) {
        std::fs::write(to, data).with_context(|| format!("writing {}", to.display()))?;
    }
    Ok(())
}

/// Builds the web assets and the server; returns the server binary's path.
fn build_all() -> Result<PathBuf> {
    build_web()?;
    let mut c = cargo();
    c.args(["build", "--profile", SERVER_PROFILE, "-p", "replay-server"]);
    status(c)?;
    Ok(root().join("target").join(SERVER_PROFILE).join("replay-server"))
}

fn run(args: &[String]) -> Result<()> {
    let server = build_all()?;
    let mut c = Command::new(server);
    // The quick start's demo app: on unless the command line or the environment says.
    if !args.iter().any(|a| a == "--demo" || a.starts_with("--demo=")) && std::env::var_os("REPLAY_DEMO").is_none() {
        c.args(["--demo", "true"]);
    }
    c.args(args).current_dir(root());
    status(c)
}

fn which(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// Installs with apt what the tests run: Debian's Chromium and ChromeDriver (browser tests), Firefox
/// ESR, WebKitGTK's WebDriver and Xvfb (the other engines), and the PostgreSQL server
/// (scale-out storage tests start a private cluster with it).
fn ensure_test_packages() -> Result<()> {
    let mut missing = Vec::new();
    if !(which("chromium") && which("chromedriver")) {
        missing.extend(["chromium", "chromium-driver"]);
    }
    let has_postgres = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).any(|e| e.path().join("bin/initdb").is_file()))
        .unwrap_or(false);
    if !has_postgres {
        missing.push("postgresql");
    }
    // The PostgreSQL TLS test makes its certificates with the openssl tool.
    if !which("openssl") {
        missing.push("openssl");
    }
    // The core end-to-end tests run in Firefox ESR and WebKitGTK too.
    if !engines::installed() {
        missing.extend(engines::PACKAGES);
    }
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(&missing)
}

/// Installs Debian `packages` with apt-get (through sudo unless root), without questions.
fn apt_install(packages: &[&str]) -> Result<()> {
    eprintln!("xtask: installing {} with apt-get", packages.join(", "));
    let sudo = if is_root() { vec![] } else { vec!["sudo".to_string()] };
    let apt = |args: &[&str]| -> Result<()> {
        let mut all: Vec<String> = sudo.clone();
        all.push("apt-get".into());
        all.extend(args.iter().map(|s| s.to_string()));
        let mut c = Command::new(&all[0]);
        c.args(&all[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        status(c)
    };
    apt(&["update"])?;
    let mut install = vec!["install", "-y"];
    install.extend(packages);
    apt(&install)?;
    Ok(())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn test(args: &[String]) -> Result<()> {
    ensure_test_packages()?;
    js_tools()?;
    let server = build_all()?;
    // The npm package installed, type-checked and bundled as users do (its e2e test records it).
    let npm_app = npm_app::npm_app()?;
    // The OpenID Connect provider the single sign-on test signs in at.
    oidc::install()?;
    // Inside `with-postgres`: a private PostgreSQL cluster is up for the tests that run on both
    // engines (REPLAY_TEST_POSTGRES_URL), so none of them skips PostgreSQL here.
    let mut c = cargo();
    c.args(["run", "-q", "-p", "replay-e2e", "--bin", "with-postgres", "--"])
        .arg(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["test", "--workspace", "--exclude", "replay-recorder", "--exclude", "replay-viewer"])
        .args(args)
        .env("REPLAY_SERVER_BIN", &server)
        .env("REPLAY_NPM_APP", &npm_app)
        .env("REPLAY_CHROMIUM", "/usr/bin/chromium")
        .env("REPLAY_CHROMEDRIVER", "/usr/bin/chromedriver");
    status(c)?;
    // The wasm crates' own unit tests run on the host.
    let mut c = cargo();
    c.args(["test", "-p", "replay-recorder", "-p", "replay-viewer", "--lib"]);
    status(c)?;
    // The core end-to-end subset in Firefox and WebKit (not for a filtered run).
    if args.is_empty() { engines::run(&server, &npm_app) } else { Ok(()) }
}

fn lint() -> Result<()> {
    codemap::check(&root())?;
    options::check(&root(), false)?;
    docs::docs()?;
    let mut c = cargo();
    c.args(["fmt", "--all", "--", "--check"]);
    status(c)?;
    let mut c = cargo();
    c.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    status(c)?;
    ensure_wasm_target()?;
    let mut c = cargo();
    c.args([
        "clippy",
        "--target",
        WASM_TARGET,
        "-p",
        "replay-recorder",
        "-p",
        "replay-viewer",
        "-p",
        "replay-protocol",
        "--",
        "-D",
        "warnings",
    ]);
    status(c)?;
    // Every shipped JS file parses and minifies (build-web), then the type check.
    build_web()?;
    check_js()
}

/// The TypeScript compiler the JS type check runs, pinned by `tools/js/package-lock.json`.
const JS_TOOLS: &str = "tools/js";

/// Type-checks the recorder's and the viewer's JavaScript (JSDoc types, `tools/js/tsconfig.json`)
/// and the recorder's typings against its implementation (`tools/js/api.check.ts`), with the
/// pinned TypeScript installed by `npm ci` into `target/jstools/` (never globally).
fn check_js() -> Result<()> {
    let tools = js_tools()?;
    let tsc = tools.join("node_modules/typescript/lib/tsc.js");
    let mut c = Command::new("node");
    c.arg(&tsc).args(["--project", &format!("{JS_TOOLS}/tsconfig.json"), "--pretty", "false"]).current_dir(root());
    status(c)
}

/// Installs the pinned JS tools (`tools/js/package-lock.json`: TypeScript, esbuild, binaryen's
/// `wasm-opt` (compiled to JavaScript and wasm: no platform binary), and the rrweb
/// recorder and player of the rrweb interop e2e test) with `npm ci` into `target/jstools/`,
/// when the lock file changed or nothing is installed yet.
fn js_tools() -> Result<PathBuf> {
    if !which("node") || !which("npm") {
        bail!("the JS tools need node and npm on PATH");
    }
    let root = root();
    let tools = root.join("target").join("jstools");
    std::fs::create_dir_all(&tools)?;
    let mut changed = false;
    for file in ["package.json", "package-lock.json"] {
        let from = root.join(JS_TOOLS).join(file);
        let data = std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
        let to = tools.join(file);
        if std::fs::read(&to).ok().as_deref() != Some(&data[..]) {
            std::fs::write(&to, data).with_context(|| format!("writing {}", to.display()))?;
            changed = true;
        }
    }
    let installed = [
        "typescript/lib/tsc.js",
        "esbuild/bin/esbuild",
        "binaryen/bin/wasm-opt",
        "rrweb-player/dist/rrweb-player.umd.cjs",
        "rrweb/dist/rrweb.umd.cjs",
    ]
    .iter()
    .all(|f| tools.join("node_modules").join(f).is_file());
    if changed || !installed {
        let mut c = Command::new("npm");
        c.args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"]).current_dir(&tools);
        status(c)?;
    }
    Ok(tools)
}

fn bench_ingest(args: &[String]) -> Result<()> {
    let server = build_all()?;
    let mut c = cargo();
    c.args(["build", "--profile", SERVER_PROFILE, "-p", "replay-bench"]);
    status(c)?;
    let mut c = Command::new(root().join("target").join(SERVER_PROFILE).join("ingest-bench"));
    c.args(args).env("REPLAY_SERVER_BIN", &server);
    status(c)
}

fn bench_hostile(args: &[String]) -> Result<()> {
    let server = build_all()?;
    let mut c = cargo();
    c.args(["build", "--profile", SERVER_PROFILE, "-p", "replay-bench-hostile"]);
    status(c)?;
    let mut c = Command::new(root().join("target").join(SERVER_PROFILE).join("hostile-bench"));
    c.args(args).env("REPLAY_SERVER_BIN", &server);
    status(c)
}

fn bench(args: &[String]) -> Result<()> {
    ensure_test_packages()?;
    let server = build_all()?;
    let root = root();
    let script = root.join("../shared/bench/run.sh");
    if !script.is_file() {
        bail!("the shared benchmark is expected at {}", script.display());
    }
    let mut c = Command::new("bash");
    c.arg(script)
        .arg("--adapter=bench/adapter.mjs")
        .args(if args.iter().any(|a| a.starts_with("--variants")) {
            vec![]
        } else {
            vec!["--variants=none,rrweb,replay".to_string()]
        })
        .args(args)
        .env("REPLAY_SERVER_BIN", &server)
        .current_dir(&root);
    status(c)
}
