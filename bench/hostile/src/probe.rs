//! What the benchmark watches of the server process from outside: its resident memory (VmRSS
//! and its high-water mark VmHWM, from `/proc/PID/status`, sampled every 100 ms), its CPU time
//! (`/proc/PID/stat`), and latency percentiles of what the sessions measured.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One memory sample, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// The anonymous part of the RSS (heap, stacks), without mapped files.
    pub anon_kib: u64,
}

/// Most samples kept (a day at 10 per second): the sampler stops recording past it.
const MAX_SAMPLES: usize = 864_000;

/// The sampler's record, shared with the task that fills it.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    samples: Arc<Mutex<Vec<Sample>>>,
}

/// VmRSS, VmHWM and RssAnon of process `pid`, in KiB.
pub fn read_memory(pid: u32) -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?, field("RssAnon:")?))
}

impl Memory {
    /// Starts sampling `pid` every 100 ms until the process is gone.
    pub fn start(pid: u32) -> Memory {
        let memory = Memory::default();
        let samples = Arc::clone(&memory.samples);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let Some((rss_kib, hwm_kib, anon_kib)) = read_memory(pid) else { break };
                let Ok(mut s) = samples.lock() else { break };
                if s.len() < MAX_SAMPLES {
                    s.push(Sample { at: Instant::now(), rss_kib, hwm_kib, anon_kib });
                }
            }
        });
        memory
    }

    /// The samples taken between `from` and `to`: first, peak and last RSS, peak anonymous
    /// RSS, and VmHWM at the last.
    pub fn window(&self, from: Instant, to: Instant) -> Option<MemoryWindow> {
        let s = self.samples.lock().ok()?;
        let inside: Vec<&Sample> = s.iter().filter(|x| x.at >= from && x.at <= to).collect();
        let (first, last) = (inside.first()?, inside.last()?);
        Some(MemoryWindow {
            start_kib: first.rss_kib,
            peak_kib: inside.iter().map(|x| x.rss_kib).max().unwrap_or(0),
            peak_anon_kib: inside.iter().map(|x| x.anon_kib).max().unwrap_or(0),
            end_kib: last.rss_kib,
            hwm_kib: last.hwm_kib,
        })
    }
}

/// Memory of the server during one phase.
#[derive(Debug, Clone, Copy)]
pub struct MemoryWindow {
    pub start_kib: u64,
    pub peak_kib: u64,
    pub peak_anon_kib: u64,
    pub end_kib: u64,
    pub hwm_kib: u64,
}

/// CPU time (user + system, all threads) process `pid` has used so far, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at state, field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// The `p` quantile of sorted microsecond figures, in milliseconds.
pub fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() - 1) as f64 * p).round() as usize;
    sorted_us[i.min(sorted_us.len() - 1)] as f64 / 1000.0
}

/// KiB as MiB, for printing.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
