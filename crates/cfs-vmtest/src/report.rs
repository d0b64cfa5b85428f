//! What a guest reported: the results-port protocol and its parser.
//!
//! The guest's init writes lines to the "cfs-results" virtio port:
//!
//! ```text
//! @@cfs-vm booted <uptime> <uname -r>
//! @@cfs-vm suite-begin <name> <uptime>
//! …the suite's stdout and stderr (libtest prints "test <name> ... ok")…
//! @@cfs-vm suite-end <name> <exit status> <uptime>
//! @@cfs-vm error <message>          set-up failed; the guest powers off
//! @@cfs-vm done <uptime>
//! ```
//!
//! A run passes only if the guest booted, every suite ended with status 0,
//! every test line said `ok` or `ignored`, and `done` arrived.

use std::fmt::Write as _;
use std::time::Duration;

/// How the guest was run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// QEMU's emulator.
    Tcg,
}

/// One test's outcome as libtest printed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `ok`
    Passed,
    /// `FAILED`
    Failed,
    /// `ignored`
    Ignored,
}

/// One suite (a test binary run).
#[derive(Debug, Clone, Default)]
pub struct SuiteReport {
    /// The suite's name.
    pub name: String,
    /// Exit status; `None` if the suite never ended (guest died).
    pub status: Option<i32>,
    /// Per-test outcomes, in the order printed.
    pub tests: Vec<(String, Outcome)>,
    /// Everything the suite printed.
    pub output: String,
    /// Guest seconds from begin to end.
    pub seconds: f64,
}

impl SuiteReport {
    /// Number of tests with outcome `o`.
    pub fn count(&self, o: Outcome) -> usize {
        self.tests.iter().filter(|(_, x)| *x == o).count()
    }
}

/// Everything learnt from one guest run.
#[derive(Debug, Clone)]
pub struct GuestReport {
    /// KVM or TCG.
    pub accel: Accel,
    /// Host wall-clock time of the whole run.
    pub wall: Duration,
    /// Guest uptime when init reported `booted` (boot time), if it did.
    pub booted_at: Option<f64>,
    /// The guest kernel's release, from the `booted` line.
    pub kernel_release: Option<String>,
    /// Guest uptime at `done`, if reached.
    pub done_at: Option<f64>,
    /// A set-up error the guest reported.
    pub guest_error: Option<String>,
    /// Set when the host killed the guest (timeout).
    pub killed: Option<String>,
    /// The suites, in run order.
    pub suites: Vec<SuiteReport>,
    /// The serial console.
    pub console: String,
}

impl GuestReport {
    /// Builds a report from the results-port text and the console text.
    pub fn parse(accel: Accel, wall: Duration, results: &str, console: String) -> GuestReport {
        let mut r = GuestReport {
            accel,
            wall,
            booted_at: None,
            kernel_release: None,
            done_at: None,
            guest_error: None,
            killed: None,
            suites: Vec::new(),
            console,
        };
        let mut current: Option<(SuiteReport, f64)> = None;
        for raw in results.lines() {
            let line = raw.trim_end_matches('\r');
            if let Some(rest) = line.strip_prefix("@@cfs-vm ") {
                let words: Vec<&str> = rest.split(' ').collect();
                match words.as_slice() {
                    ["booted", t, release @ ..] => {
                        r.booted_at = t.parse().ok();
                        r.kernel_release = release.first().map(|s| (*s).to_owned());
                    }
                    ["suite-begin", name, t] => {
                        if let Some((s, _)) = current.take() {
                            r.suites.push(s);
                        }
                        let s = SuiteReport {
                            name: (*name).to_owned(),
                            ..SuiteReport::default()
                        };
                        current = Some((s, t.parse().unwrap_or(0.0)));
                    }
                    ["suite-end", name, status, t] => {
                        if let Some((mut s, start)) = current.take() {
                            if s.name == *name {
                                s.status = status.parse().ok();
                                s.seconds = t.parse::<f64>().unwrap_or(start) - start;
                            }
                            r.suites.push(s);
                        }
                    }
                    ["error", ..] => r.guest_error = Some(rest["error".len()..].trim().to_owned()),
                    ["done", t] => r.done_at = t.parse().ok(),
                    _ => {}
                }
                continue;
            }
            if let Some((s, _)) = current.as_mut() {
                s.output.push_str(line);
                s.output.push('\n');
                if let Some(t) = parse_test_line(line) {
                    s.tests.push(t);
                }
            }
        }
        if let Some((s, _)) = current.take() {
            r.suites.push(s);
        }
        r
    }

    /// Why the run failed, one line per reason; empty if it passed.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(k) = &self.killed {
            out.push(format!("guest killed: {k}"));
        }
        if self.booted_at.is_none() {
            out.push("guest never reported booting".into());
        }
        if let Some(e) = &self.guest_error {
            out.push(format!("guest set-up failed: {e}"));
        }
        if let Some(line) = self
            .console
            .lines()
            .find(|l| l.contains("Kernel panic") || l.contains("BUG: ") || l.contains("Oops"))
        {
            out.push(format!("guest kernel: {}", line.trim()));
        }
        for s in &self.suites {
            match s.status {
                None => out.push(format!("suite {}: never finished", s.name)),
                Some(0) => {}
                Some(124 | 137) => out.push(format!("suite {}: killed at its time limit", s.name)),
                Some(c) => out.push(format!("suite {}: exit status {c}", s.name)),
            }
            for (t, o) in &s.tests {
                if *o == Outcome::Failed {
                    out.push(format!("suite {}: test {t} FAILED", s.name));
                }
            }
        }
        if self.done_at.is_none() {
            out.push("guest did not reach the end of its plan".into());
        }
        out
    }

    /// A per-suite summary table.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "guest ({:?}, kernel {}): booted after {:.1} s, done after {:.1} s (host wall {:.1} s)",
            self.accel,
            self.kernel_release.as_deref().unwrap_or("?"),
            self.booted_at.unwrap_or(f64::NAN),
            self.done_at.unwrap_or(f64::NAN),
            self.wall.as_secs_f64()
        );
        for suite in &self.suites {
            let _ = writeln!(
                s,
                "  {:<28} {:>4} passed {:>3} failed {:>3} ignored  status {:<4} {:>7.1} s",
                suite.name,
                suite.count(Outcome::Passed),
                suite.count(Outcome::Failed),
                suite.count(Outcome::Ignored),
                suite
                    .status
                    .map_or_else(|| "none".to_owned(), |c| c.to_string()),
                suite.seconds
            );
        }
        s
    }

    /// Every test line, `PASS`/`FAIL`/`SKIP` per test, for the log.
    pub fn per_test(&self) -> String {
        let mut s = String::new();
        for suite in &self.suites {
            for (t, o) in &suite.tests {
                let word = match o {
                    Outcome::Passed => "PASS",
                    Outcome::Failed => "FAIL",
                    Outcome::Ignored => "SKIP",
                };
                let _ = writeln!(s, "{word} {}::{t}", suite.name);
            }
        }
        s
    }
}

/// `test <name> ... ok|FAILED|ignored[, reason]` → (name, outcome).
fn parse_test_line(line: &str) -> Option<(String, Outcome)> {
    let rest = line.strip_prefix("test ")?;
    let (name, verdict) = rest.split_once(" ... ")?;
    let outcome = match verdict.split(',').next()?.trim() {
        "ok" => Outcome::Passed,
        "FAILED" => Outcome::Failed,
        "ignored" => Outcome::Ignored,
        _ => return None,
    };
    Some((name.to_owned(), outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
@@cfs-vm booted 4.12 6.12.118+deb12-amd64\r
@@cfs-vm suite-begin core 4.50
running 3 tests
test a::one ... ok
test a::two ... ignored, needs X
test b ... ok
test result: ok.
@@cfs-vm suite-end core 0 10.25
@@cfs-vm done 10.30
";

    #[test]
    fn a_clean_run_passes() {
        let r = GuestReport::parse(Accel::Tcg, Duration::from_secs(12), GOOD, String::new());
        assert!(r.failures().is_empty(), "{:?}", r.failures());
        assert_eq!(r.booted_at, Some(4.12));
        assert_eq!(r.kernel_release.as_deref(), Some("6.12.118+deb12-amd64"));
        assert_eq!(r.suites.len(), 1);
        let s = &r.suites[0];
        assert_eq!(
            (s.count(Outcome::Passed), s.count(Outcome::Ignored)),
            (2, 1)
        );
        assert!((s.seconds - 5.75).abs() < 1e-9);
        assert!(r.per_test().contains("SKIP core::a::two"));
        assert!(r.summary().contains("booted after 4.1 s"));
    }

    #[test]
    fn every_kind_of_failure_is_reported() {
        let failed = GOOD.replace("test b ... ok", "test b ... FAILED");
        let r = GuestReport::parse(Accel::Tcg, Duration::ZERO, &failed, String::new());
        assert_eq!(r.failures(), ["suite core: test b FAILED"]);

        let status = GOOD.replace("suite-end core 0", "suite-end core 101");
        let r = GuestReport::parse(Accel::Tcg, Duration::ZERO, &status, String::new());
        assert_eq!(r.failures(), ["suite core: exit status 101"]);

        let cut = &GOOD[..GOOD.find("test b").unwrap()];
        let r = GuestReport::parse(
            Accel::Tcg,
            Duration::ZERO,
            cut,
            "[ 9.1] Kernel panic - not syncing: x".into(),
        );
        assert_eq!(
            r.failures(),
            [
                "guest kernel: [ 9.1] Kernel panic - not syncing: x",
                "suite core: never finished",
                "guest did not reach the end of its plan"
            ]
        );

        let r = GuestReport::parse(Accel::Kvm, Duration::ZERO, "", String::new());
        assert!(
            r.failures()
                .contains(&"guest never reported booting".to_owned())
        );

        let err = "@@cfs-vm booted 1 x\n@@cfs-vm error insmod ext4 failed\n";
        let r = GuestReport::parse(Accel::Tcg, Duration::ZERO, err, String::new());
        assert!(
            r.failures()
                .contains(&"guest set-up failed: insmod ext4 failed".to_owned())
        );
    }
}
