//! `cargo xtask container [--check]`: the server as a container image.
//!
//! The image is `FROM scratch` (see the root `Dockerfile`), so nothing is pulled: this stages
//! its whole file system in `target/container/` from the release binary and the host's copies
//! of the C libraries `ldd` names, then builds it with buildah (Debian's, installed with apt
//! when missing) as `replay-server:latest`. `--check` starts the image with podman and checks
//! what a deployment relies on: `/healthz` and the image's own health check answer, the viewer
//! and the recorder are served, it runs as the unprivileged user, and what it stores in the
//! `/data` volume is still there when a new container starts on the same volume.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// The image's name.
const IMAGE: &str = "replay-server:latest";
/// The unprivileged user (and group) the server runs as.
const UID: u32 = 10001;
/// Options that let podman run containers on machines like ours (a VM with hybrid cgroups and
/// no CAP_SYS_RESOURCE): runc with cgroupfs, and limits no higher than the host's.
const PODMAN_RUN_OPTS: &[&str] = &["--runtime", "runc", "--cgroup-manager", "cgroupfs", "--storage-driver", "vfs"];
const ULIMITS: &[&str] = &["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"];

pub fn container(args: &[String]) -> Result<()> {
    let check = args.iter().any(|a| a == "--check");
    if let Some(other) = args.iter().find(|a| *a != "--check") {
        bail!("unknown argument {other:?} (usage: cargo xtask container [--check])");
    }
    let mut missing = Vec::new();
    if !crate::which("buildah") {
        missing.push("buildah");
    }
    if check && !crate::which("podman") {
        missing.push("podman");
    }
    if check && !crate::which("runc") {
        missing.push("runc");
    }
    if !missing.is_empty() {
        crate::apt_install(&missing)?;
    }
    let server = crate::build_all()?;
    let context = crate::root().join("target").join("container");
    stage(&server, &context)?;
    let mut c = Command::new("buildah");
    c.args(["--storage-driver", "vfs", "bud", "--format", "docker", "--layers=false", "-t", IMAGE, "-f"])
        .arg(crate::root().join("Dockerfile"))
        .arg(&context);
    crate::status(c)?;
    let size: u64 = walk(&context.join("rootfs"))?.iter().filter_map(|p| p.metadata().ok()).map(|m| m.len()).sum();
    eprintln!("xtask: built {IMAGE} ({:.1} MB of files)", size as f64 / 1e6);
    if check { check_image() } else { Ok(()) }
}

/// Lays out the build context: `rootfs/` (binary, libraries, certificates, users) and `data/`.
fn stage(server: &Path, context: &Path) -> Result<()> {
    if context.exists() {
        std::fs::remove_dir_all(context).with_context(|| format!("clearing {}", context.display()))?;
    }
    let rootfs = context.join("rootfs");
    let copy = |from: &Path, to: &str| -> Result<()> {
        let dest = rootfs.join(to.trim_start_matches('/'));
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::copy(from, &dest).with_context(|| format!("copying {} into the image", from.display()))?;
        Ok(())
    };
    copy(server, "/usr/local/bin/replay-server")?;
    for lib in linked_libraries(server)? {
        copy(&lib, &lib.to_string_lossy())?;
    }
    let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
    ensure!(certs.is_file(), "{} is missing (apt-get install ca-certificates)", certs.display());
    copy(certs, "/etc/ssl/certs/ca-certificates.crt")?;
    let etc = rootfs.join("etc");
    std::fs::write(
        etc.join("passwd"),
        format!("root:x:0:0::/:/nonexistent\nreplay:x:{UID}:{UID}::/data:/nonexistent\n"),
    )?;
    std::fs::write(etc.join("group"), format!("root:x:0:\nreplay:x:{UID}:\n"))?;
    // SQLite may spill large sorts to a temporary directory.
    let tmp = rootfs.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    set_mode(&tmp, 0o1777)?;
    let data = context.join("data");
    std::fs::create_dir_all(&data)?;
    set_mode(&data, 0o700)?;
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> Result<()> {
    bail!("container images are built on Linux")
}

/// The shared libraries `binary` loads (and the dynamic loader), as `ldd` lists them.
fn linked_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output().context("running ldd")?;
    ensure!(out.status.success(), "ldd {} failed", binary.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let libs = parse_ldd(&text);
    ensure!(!libs.is_empty(), "ldd found no libraries in {}: {text}", binary.display());
    Ok(libs)
}

/// The absolute paths in `ldd` output: `name => /path (addr)` and `/path (addr)` lines.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => line,
            };
            let path = path.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() { out.extend(walk(&path)?) } else { out.push(path) }
    }
    Ok(out)
}

fn podman(args: &[&str]) -> Command {
    let mut c = Command::new("podman");
    c.args(PODMAN_RUN_OPTS).args(args);
    c
}

fn podman_output(args: &[&str]) -> Result<String> {
    let out = podman(args).output().context("running podman")?;
    ensure!(out.status.success(), "podman {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Status code and body of `GET path` on 127.0.0.1:`port` (HTTP/1.1, `Connection: close`).
fn get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    s.take(4 << 20).read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).context("no HTTP status line")?;
    Ok((status, text))
}

/// A port nothing listens on now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts the image on a fresh volume, checks it, starts it again on the same volume.
fn check_image() -> Result<()> {
    let tag = std::process::id();
    let (name, volume) = (format!("replay-check-{tag}"), format!("replay-check-data-{tag}"));
    let port = free_port()?;
    let result = check_runs(&name, &volume, port);
    let _ = podman(&["rm", "-f", &name]).output();
    let _ = podman(&["volume", "rm", "-f", &volume]).output();
    result?;
    eprintln!("xtask: {IMAGE} checked: health, viewer, recorder, non-root user, /data kept across containers");
    Ok(())
}

fn check_runs(name: &str, volume: &str, port: u16) -> Result<()> {
    let user = podman_output(&["image", "inspect", "--format", "{{.Config.User}}", IMAGE])?;
    ensure!(user == format!("{UID}:{UID}"), "the image runs as {user:?}, not the unprivileged user");
    let mut keys = Vec::new();
    for round in 0..2 {
        let listen = format!("REPLAY_LISTEN=127.0.0.1:{port}");
        let volume_arg = format!("{volume}:/data");
        let mut run = vec!["run", "-d", "--name", name, "--network", "host", "-e", &listen, "-v", &volume_arg];
        run.extend(ULIMITS);
        run.push(IMAGE);
        podman_output(&run)?;
        wait_healthy(port, Duration::from_secs(30))?;
        let (status, _) = get(port, "/viewer/")?;
        ensure!(status == 303, "/viewer/ answered {status}, not the redirect to sign in");
        let (status, body) = get(port, "/recorder.js")?;
        ensure!(status == 200 && body.contains("javascript"), "/recorder.js answered {status}:\n{body}");
        let (status, body) = get(port, "/login")?;
        ensure!(status == 200 && body.contains("form_token"), "/login answered {status}");
        let health = podman(&["healthcheck", "run", name]).output().context("podman healthcheck")?;
        ensure!(
            health.status.success(),
            "the image's health check failed: {}",
            String::from_utf8_lossy(&health.stderr)
        );
        let out = podman(&["logs", name]).output().context("podman logs")?;
        let logs = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let key = logs
            .lines()
            .find_map(|l| l.trim().strip_prefix("ingest key: "))
            .and_then(|k| k.split(' ').next())
            .with_context(|| format!("no ingest key in the logs (round {round}):\n{logs}"))?
            .to_owned();
        keys.push(key);
        podman_output(&["stop", "-t", "10", name])?;
        podman_output(&["rm", name])?;
    }
    ensure!(keys[0] == keys[1], "the second container made a new project: /data was not kept ({keys:?})");
    Ok(())
}

fn wait_healthy(port: u16, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        match get(port, "/healthz") {
            Ok((200, _)) => return Ok(()),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Ok((status, _)) => bail!("/healthz answered {status}"),
            Err(e) => bail!("the container never answered /healthz: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_names_every_library_and_the_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f53)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f53)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f53)\n";
        assert_eq!(
            parse_ldd(text),
            ["/lib/x86_64-linux-gnu/libgcc_s.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]
                .map(PathBuf::from)
        );
    }
}
