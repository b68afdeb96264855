//! What is read through source maps, shared by the API's reads: the cache of parsed maps and
//! the error groups keyed by original frames. (The routes that upload maps and read a session
//! through them are [`crate::sourcemaps`].)
//!
//! **Ingest never waits for symbolication.** Ingest fingerprints an error by its message and
//! minified top frame, as before. Grouping by original frames happens when groups are read
//! ([`error_groups`]): each group's top frame is read through the map of the release of its
//! latest session and the group is re-keyed by
//! [`replay_core::symbolicate::original_fingerprint`] (message, original function and file, no
//! line), and groups with the same key are merged. So a new deploy, whose minified positions
//! all moved, lands in the group of the old one as soon as its map is uploaded, and a map
//! uploaded after the errors arrived applies to them too. (A session that saw the error under
//! both releases counts in both minified groups, so a merged group's session count may count
//! it twice; and a session that changed release mid-way is read with its latest release.)
//! Re-keyings are cached per (project, fingerprint) for [`GROUP_TTL`].
//!
//! **The cache** holds parsed maps by (project, release, URL), within [`CACHE_BYTES`] of
//! estimated memory and [`CACHE_ENTRIES`] entries, least recently used out first; a map larger
//! than the budget is used and not kept. Entries expire after [`MAP_TTL`] (other instances, or
//! the CLI, may have stored a new upload), misses after [`MISS_TTL`]; an upload through this
//! instance drops its release's entries at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use replay_core::symbolicate::{self, MappedFile};
use replay_store::{ErrorGroup, RECENT_ERROR_SESSIONS, Storage};

use crate::{ApiError, AppState};

/// Estimated memory the cache of parsed maps may hold.
pub const CACHE_BYTES: usize = 128 << 20;
/// Most maps (and misses) cached.
pub const CACHE_ENTRIES: usize = 512;
/// How long a parsed map is kept.
pub const MAP_TTL: Duration = Duration::from_secs(300);
/// How long "no map for this file" is kept.
pub const MISS_TTL: Duration = Duration::from_secs(15);
/// How long an error group's re-keying is kept.
pub const GROUP_TTL: Duration = Duration::from_secs(60);
/// Most re-keyings cached.
const GROUP_ENTRIES: usize = 20_000;

type MapKey = (i64, String, String);

struct CachedMap {
    file: Option<Arc<MappedFile>>,
    weight: usize,
    loaded: Instant,
    used: u64,
}

/// A group's fingerprint and frame once read through the maps (`None`: unchanged).
type Rekey = Option<(String, String)>;

#[derive(Default)]
struct Inner {
    maps: HashMap<MapKey, CachedMap>,
    weight: usize,
    tick: u64,
    groups: HashMap<(i64, String), (Rekey, Instant)>,
}

/// The cache of parsed source maps and error-group re-keyings (see the module docs).
#[derive(Default)]
pub struct Cache {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}

impl Cache {
    fn get(&self, key: &MapKey) -> Option<Option<Arc<MappedFile>>> {
        let mut inner = self.inner.lock().ok()?;
        inner.tick += 1;
        let tick = inner.tick;
        let fresh =
            inner.maps.get(key).is_some_and(|e| e.loaded.elapsed() < if e.file.is_some() { MAP_TTL } else { MISS_TTL });
        if !fresh {
            if let Some(old) = inner.maps.remove(key) {
                inner.weight -= old.weight;
            }
            return None;
        }
        let e = inner.maps.get_mut(key)?;
        e.used = tick;
        Some(e.file.clone())
    }

    fn put(&self, key: MapKey, file: Option<Arc<MappedFile>>) {
        let weight = file.as_ref().map_or(0, |f| f.weight()) + key.1.len() + key.2.len();
        if weight > CACHE_BYTES {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else { return };
        if let Some(old) = inner.maps.remove(&key) {
            inner.weight -= old.weight;
        }
        while !inner.maps.is_empty() && (inner.weight + weight > CACHE_BYTES || inner.maps.len() >= CACHE_ENTRIES) {
            // A scan of at most CACHE_ENTRIES entries, on a miss only.
            let Some(oldest) = inner.maps.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone()) else { break };
            if let Some(old) = inner.maps.remove(&oldest) {
                inner.weight -= old.weight;
            }
        }
        inner.tick += 1;
        let used = inner.tick;
        inner.weight += weight;
        inner.maps.insert(key, CachedMap { file, weight, loaded: Instant::now(), used });
    }

    /// Drops what this instance cached of a release (after an upload to it).
    pub fn forget_release(&self, project: i64, release: &str) {
        let Ok(mut inner) = self.inner.lock() else { return };
        let gone: Vec<MapKey> = inner.maps.keys().filter(|k| k.0 == project && k.1 == release).cloned().collect();
        for k in gone {
            if let Some(old) = inner.maps.remove(&k) {
                inner.weight -= old.weight;
            }
        }
        inner.groups.retain(|k, _| k.0 != project);
    }

    fn group(&self, project: i64, fingerprint: &str) -> Option<Rekey> {
        let inner = self.inner.lock().ok()?;
        let (rekey, at) = inner.groups.get(&(project, fingerprint.to_owned()))?;
        (at.elapsed() < GROUP_TTL).then(|| rekey.clone())
    }

    fn put_group(&self, project: i64, fingerprint: &str, rekey: Rekey) {
        let Ok(mut inner) = self.inner.lock() else { return };
        if inner.groups.len() >= GROUP_ENTRIES {
            inner.groups.retain(|_, (_, at)| at.elapsed() < GROUP_TTL);
            if inner.groups.len() >= GROUP_ENTRIES {
                inner.groups.clear();
            }
        }
        inner.groups.insert((project, fingerprint.to_owned()), (rekey, Instant::now()));
    }

    /// The parsed map of the file at `url` in `release`, from the cache or the storage.
    pub fn mapped(
        &self,
        storage: &dyn Storage,
        project: i64,
        release: &str,
        url: &str,
    ) -> Result<Option<Arc<MappedFile>>, replay_store::Error> {
        let url = url.split(['?', '#']).next().unwrap_or(url);
        let key = (project, release.to_owned(), url.to_owned());
        if let Some(hit) = self.get(&key) {
            return Ok(hit);
        }
        let file = load(storage, project, release, url)?.map(Arc::new);
        self.put(key, file.clone());
        Ok(file)
    }
}

/// Whether a release with the files `uploaded` (by URL) may map the script at `url`: it holds
/// the script or its `.map` under one of the names [`Cache::mapped`] looks them up by.
pub(crate) fn may_have_map(uploaded: &std::collections::HashSet<String>, url: &str) -> bool {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    candidates(url).into_iter().chain(candidates(&format!("{url}.map"))).any(|u| uploaded.contains(&u))
}

/// `url` and its any-origin form `~/path`.
fn candidates(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    if let Ok(u) = url::Url::parse(url)
        && u.has_host()
    {
        out.push(format!("~{}", u.path()));
    }
    out
}

fn first_artifact(
    storage: &dyn Storage,
    project: i64,
    release: &str,
    urls: &[String],
) -> Result<Option<Vec<u8>>, replay_store::Error> {
    for u in urls {
        if let Some(body) = storage.artifact(project, release, u)? {
            return Ok(Some(body));
        }
    }
    Ok(None)
}

/// Finds and parses the map of `url`: the one its uploaded minified file names
/// (`sourceMappingURL`, resolved against `url`), else `url.map`.
fn load(
    storage: &dyn Storage,
    project: i64,
    release: &str,
    url: &str,
) -> Result<Option<MappedFile>, replay_store::Error> {
    let minified = first_artifact(storage, project, release, &candidates(url))?.and_then(|b| String::from_utf8(b).ok());
    let named = minified
        .as_deref()
        .and_then(symbolicate::source_mapping_url)
        .and_then(|name| url::Url::parse(url).ok()?.join(name).ok())
        .map(String::from);
    let map_url = named.unwrap_or_else(|| format!("{url}.map"));
    let Some(map) = first_artifact(storage, project, release, &candidates(&map_url))? else { return Ok(None) };
    match MappedFile::parse(&map, minified) {
        Ok(f) => Ok(Some(f)),
        Err(e) => {
            tracing::warn!(project, release, url = %map_url, error = %e, "an uploaded source map does not parse");
            Ok(None)
        }
    }
}

// ---- error groups by original frames ----

/// Groups read per answer before merging: merging shrinks the list.
const GROUP_OVERFETCH: usize = 2;

/// The error groups of a project, re-keyed by their original top frame and merged (see the
/// module docs), most recently seen first, at most `limit`.
pub async fn error_groups(state: &AppState, project: i64, limit: usize) -> Result<Vec<ErrorGroup>, ApiError> {
    let st = state.clone();
    let fetch = limit.saturating_mul(GROUP_OVERFETCH).min(1_000);
    Ok(state
        .blocking(move |s| {
            let groups = s.error_groups(project, fetch)?;
            Ok::<_, replay_store::Error>(regroup(&st.symbols, s, project, groups, limit))
        })
        .await?)
}

fn rekey(
    cache: &Cache,
    storage: &dyn Storage,
    project: i64,
    g: &ErrorGroup,
    releases: &mut HashMap<String, String>,
) -> Rekey {
    let raw = symbolicate::parse_frame(&g.frame)?;
    let session = g.recent_sessions.first()?;
    let release = match releases.get(session) {
        Some(r) => r.clone(),
        None => {
            let r = storage.session(project, session).ok().flatten().map(|row| row.release).unwrap_or_default();
            releases.insert(session.clone(), r.clone());
            r
        }
    };
    if release.is_empty() {
        return None;
    }
    let original = cache.mapped(storage, project, &release, &raw.url).ok().flatten()?.frame(&raw)?;
    Some((symbolicate::original_fingerprint(&g.message, &original), original.text()))
}

fn regroup(
    cache: &Cache,
    storage: &dyn Storage,
    project: i64,
    groups: Vec<ErrorGroup>,
    limit: usize,
) -> Vec<ErrorGroup> {
    let mut releases = HashMap::new();
    let mut out: Vec<ErrorGroup> = Vec::with_capacity(groups.len());
    let mut at: HashMap<String, usize> = HashMap::new();
    for mut g in groups {
        let key = match cache.group(project, &g.fingerprint) {
            Some(k) => k,
            None => {
                let k = rekey(cache, storage, project, &g, &mut releases);
                cache.put_group(project, &g.fingerprint, k.clone());
                k
            }
        };
        if let Some((fingerprint, frame)) = key {
            g.fingerprint = fingerprint;
            g.frame = frame;
        }
        match at.get(&g.fingerprint) {
            Some(&i) => {
                let m = &mut out[i];
                m.count += g.count;
                m.sessions += g.sessions;
                m.first_ms = m.first_ms.min(g.first_ms);
                let newer = g.last_ms > m.last_ms;
                m.last_ms = m.last_ms.max(g.last_ms);
                let (mut first, second) = if newer {
                    (g.recent_sessions, std::mem::take(&mut m.recent_sessions))
                } else {
                    (std::mem::take(&mut m.recent_sessions), g.recent_sessions)
                };
                for s in second {
                    if !first.contains(&s) {
                        first.push(s);
                    }
                }
                first.truncate(RECENT_ERROR_SESSIONS);
                m.recent_sessions = first;
            }
            None => {
                at.insert(g.fingerprint.clone(), out.len());
                out.push(g);
            }
        }
    }
    out.sort_by_key(|g| std::cmp::Reverse(g.last_ms));
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_within_its_entry_count() {
        let cache = Cache::default();
        for i in 0..(CACHE_ENTRIES + 50) {
            cache.put((1, "r".into(), format!("https://cdn.example/{i}.js")), None);
        }
        let inner = cache.inner.lock().expect("lock");
        assert!(inner.maps.len() <= CACHE_ENTRIES);
    }

    #[test]
    fn any_origin_form_of_a_url() {
        assert_eq!(candidates("https://cdn.example/js/app.js"), ["https://cdn.example/js/app.js", "~/js/app.js"]);
        assert_eq!(candidates("~/app.js"), ["~/app.js"]);
    }
}
