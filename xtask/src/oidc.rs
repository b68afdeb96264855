//! The OpenID Connect provider of the single sign-on end-to-end test (`tests/oidc/`: the pinned,
//! OpenID-certified `oidc-provider` and the script that starts it): `npm ci` into
//! `target/oidc-provider/` when its lock file changed or nothing is installed yet, as
//! `cargo xtask test` does before the tests (the e2e test `oidc` runs it from there).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Where the test provider is described, in the repository.
const SOURCE: &str = "tests/oidc";

/// Installs the provider's packages; returns the folder they are installed in.
pub fn install() -> Result<PathBuf> {
    if !crate::which("node") || !crate::which("npm") {
        bail!("the OpenID Connect test provider needs node and npm on PATH");
    }
    let root = crate::root();
    let dir = root.join("target").join("oidc-provider");
    std::fs::create_dir_all(&dir)?;
    let mut changed = false;
    for file in ["package.json", "package-lock.json"] {
        let from = root.join(SOURCE).join(file);
        let data = std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
        let to = dir.join(file);
        if std::fs::read(&to).ok().as_deref() != Some(&data[..]) {
            std::fs::write(&to, data).with_context(|| format!("writing {}", to.display()))?;
            changed = true;
        }
    }
    if changed || !dir.join("node_modules/oidc-provider/package.json").is_file() {
        let mut c = Command::new("npm");
        c.args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"]).current_dir(&dir);
        crate::status(c)?;
    }
    Ok(dir)
}
