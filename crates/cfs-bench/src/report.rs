//! Plain-text report helpers and measurement utilities shared by benchmarks.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Prints a section header.
pub(crate) fn section(name: &str, about: &str) {
    println!("== {name}: {about}");
    println!(
        "   host: {} CPU(s), {}; load average {}",
        cfs_core::verity::default_threads(),
        cpu_model().unwrap_or_else(|| "unknown CPU".to_owned()),
        load_average()
    );
}

/// Prints one `label: value` line, aligned.
pub(crate) fn line(label: &str, value: impl std::fmt::Display) {
    println!("   {label:<44} {value}");
}

/// Verdict text for a measured value against a lower bound.
pub(crate) fn verdict(value: f64, target: f64) -> &'static str {
    if value >= target {
        "PASS"
    } else {
        "BELOW TARGET"
    }
}

/// Throughput in MB/s (10^6 bytes per second).
pub(crate) fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

/// Runs `f` repeatedly until at least `min_time` has passed; returns the
/// number of runs and the total time.
pub(crate) fn repeat_for(min_time: Duration, mut f: impl FnMut()) -> (u64, Duration) {
    let start = Instant::now();
    let mut runs = 0;
    loop {
        f();
        runs += 1;
        let elapsed = start.elapsed();
        if elapsed >= min_time {
            return (runs, elapsed);
        }
    }
}

/// Wall-clock and CPU time (user + system, all threads) of one measurement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) wall: Duration,
    pub(crate) cpu: Option<Duration>,
}

impl Timing {
    /// `wall s, MB/s, cpu s` for `bytes` processed.
    pub(crate) fn describe(&self, bytes: u64) -> String {
        let cpu = self
            .cpu
            .map_or_else(|| "n/a".to_owned(), |c| format!("{:.2} s", c.as_secs_f64()));
        format!(
            "{:8.3} s  {:8.0} MB/s  (CPU {cpu})",
            self.wall.as_secs_f64(),
            mb_per_s(bytes, self.wall)
        )
    }
}

/// Times one call of `f`.
pub(crate) fn timed<T>(f: impl FnOnce() -> T) -> (Timing, T) {
    let cpu0 = process_cpu_time();
    let start = Instant::now();
    let v = f();
    let wall = start.elapsed();
    let cpu = process_cpu_time()
        .zip(cpu0)
        .map(|(b, a)| b.saturating_sub(a));
    (Timing { wall, cpu }, v)
}

/// The run with the shortest wall time of `runs` calls of `f`.
pub(crate) fn best_of<T>(runs: usize, mut f: impl FnMut() -> Result<T>) -> Result<(Timing, T)> {
    let mut best: Option<(Timing, T)> = None;
    for _ in 0..runs.max(1) {
        let (t, v) = timed(&mut f);
        let v = v?;
        if best.as_ref().is_none_or(|(b, _)| t.wall < b.wall) {
            best = Some((t, v));
        }
    }
    best.context("no run")
}

/// User + system CPU time of this process so far, from `/proc/self/stat`
/// (USER_HZ = 100 ticks per second on Linux).
pub(crate) fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is field 3,
    // utime field 14, stime field 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The 1-minute load average, to judge how busy the machine was.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "n/a".to_owned())
}

/// `openssl speed -evp <alg> -bytes <bytes> -seconds <seconds>`: bytes per second.
pub(crate) fn openssl_speed(alg: &str, bytes: usize, seconds: u32) -> Result<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-evp", alg, "-bytes"])
        .arg(bytes.to_string())
        .arg("-seconds")
        .arg(seconds.to_string())
        .output()
        .context("running `openssl speed` (is openssl installed?)")?;
    if !out.status.success() {
        bail!(
            "openssl speed failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    parse_openssl_speed(&text, alg)
        .with_context(|| format!("cannot find the {alg} figure in openssl output:\n{text}"))
}

/// Finds the result line `<alg>  <value>k` (value in 1000s of bytes per
/// second) of `openssl speed` output.
fn parse_openssl_speed(text: &str, alg: &str) -> Option<f64> {
    text.lines().rev().find_map(|l| {
        let mut words = l.split_whitespace();
        let name = words.next()?;
        if !name.eq_ignore_ascii_case(alg) {
            return None;
        }
        let k: f64 = words.next()?.strip_suffix('k')?.parse().ok()?;
        Some(k * 1000.0)
    })
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let model = info.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "model name").then(|| v.trim().to_owned())
    })?;
    let sha_ni = info
        .lines()
        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "sha_ni"));
    Some(format!("{model}{}", if sha_ni { " (SHA-NI)" } else { "" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_readable() {
        assert!(process_cpu_time().is_some());
    }

    #[test]
    fn parses_openssl_speed_output() {
        let text = "The 'numbers' are in 1000s of bytes per second processed.\n\
                    type           4096 bytes\n\
                    sha256         1706332.16k\n";
        assert_eq!(parse_openssl_speed(text, "sha256"), Some(1_706_332_160.0));
        assert_eq!(parse_openssl_speed(text, "sha512"), None);
    }
}
