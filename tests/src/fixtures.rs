//! Fixture pages: [`FixtureServer`] serves a folder of `fixtures/` on its own loopback origin
//! (the recorder script tag pointed at the server under test), with a generated tone for the
//! media elements.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

/// The folder `fixtures/<name>` of this crate.
pub fn fixtures_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// A static file server for fixture pages on a random loopback port (its own origin, so each
/// page gets its own session storage). `{{SERVER}}` and `{{KEY}}` in `.html`, `.css` and `.js`
/// files are replaced; `tone.wav` is a generated 3 s tone; byte ranges are honoured (media
/// elements seek through them). Stops when dropped.
pub struct FixtureServer {
    pub base: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Files served from memory ([`FixtureServer::put`]), before the directory's.
    extra: Extra,
}

type Extra = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>;

impl FixtureServer {
    pub fn start(dir: PathBuf, server: &str, key: &str) -> Result<FixtureServer> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let base = format!("http://{}", listener.local_addr()?);
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let extra = Extra::default();
        let (flag, server, key, files) = (stop.clone(), server.to_owned(), key.to_owned(), extra.clone());
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (dir, server, key, files) = (dir.clone(), server.clone(), key.clone(), files.clone());
                        std::thread::spawn(move || {
                            let _ = serve_fixture(stream, &dir, &server, &key, &files);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(FixtureServer { base, stop, extra })
    }

    /// Serves `body` at `path` from now on (e.g. a snapshot's HTML, rendered at the recorded
    /// page's address so that its relative URLs load).
    pub fn put(&self, path: &str, body: Vec<u8>) {
        if let Ok(mut files) = self.extra.lock() {
            files.insert(path.to_owned(), body);
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A 3 s, 8 kHz mono 16-bit WAV of a quiet 440 Hz tone.
pub fn tone_wav() -> Vec<u8> {
    let rate = 8000u32;
    let samples: Vec<i16> = (0..rate * 3)
        .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 3000.0) as i16)
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

fn serve_fixture(
    stream: std::net::TcpStream,
    dir: &std::path::Path,
    server: &str,
    key: &str,
    extra: &Extra,
) -> Result<()> {
    use std::io::Write;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request)? == 0 {
            return Ok(());
        }
        let mut range: Option<(usize, Option<usize>)> = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("range: bytes=") {
                let (a, b) = r.trim().split_once('-').unwrap_or(("0", ""));
                range = Some((a.parse().unwrap_or(0), b.parse().ok()));
            }
        }
        let path = request.split_whitespace().nth(1).unwrap_or("/");
        let path = path.split(['?', '#']).next().unwrap_or("/").trim_start_matches('/');
        let safe = !path.contains("..") && !path.is_empty();
        let put = extra.lock().ok().and_then(|files| files.get(path).cloned());
        let body: Option<Vec<u8>> = if put.is_some() {
            put
        } else if path == "tone.wav" {
            Some(tone_wav())
        } else if safe {
            std::fs::read(dir.join(path)).ok()
        } else {
            None
        };
        let ctype = match path.rsplit('.').next() {
            Some("html") => "text/html; charset=utf-8",
            Some("css") => "text/css",
            Some("js") => "text/javascript",
            Some("svg") => "image/svg+xml",
            Some("wav") => "audio/wav",
            Some("woff2") => "font/woff2",
            _ => "application/octet-stream",
        };
        let Some(mut body) = body else {
            stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")?;
            continue;
        };
        if ctype.starts_with("text/") {
            let text = String::from_utf8_lossy(&body).replace("{{SERVER}}", server).replace("{{KEY}}", key);
            body = text.into_bytes();
        }
        let total = body.len();
        let (status, slice, extra) = match range {
            Some((start, end)) if start < total => {
                let end = end.unwrap_or(total - 1).min(total - 1);
                ("206 Partial Content", &body[start..=end], format!("content-range: bytes {start}-{end}/{total}\r\n"))
            }
            _ => ("200 OK", &body[..], String::new()),
        };
        // Fonts are served to other origins as font hosts serve them (the viewer's replay loads them).
        let cors = if ctype.starts_with("font/") { "access-control-allow-origin: *\r\n" } else { "" };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\naccept-ranges: bytes\r\ncache-control: no-store\r\n{cors}{extra}\r\n",
            slice.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(slice)?;
    }
}
