//! Progress display (indicatif) for long repository commands.
//!
//! Bars are drawn on stderr only when stderr is a terminal; otherwise they
//! are hidden and no polling thread runs, so redirected output stays clean.
//! The library exposes plain atomic counters; [`poll_while`] reads them from
//! a helper thread every 100 ms while the work runs on the calling thread.
//! When the work is done, [`summary`] says what it did in one line on
//! stderr, terminal or not (after the bar is cleared), so logs of scripted
//! runs show it too.

use std::io::IsTerminal;
use std::sync::mpsc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often counters are read and the bar redrawn.
const TICK: Duration = Duration::from_millis(100);

/// True when progress should be shown.
fn enabled() -> bool {
    std::io::stderr().is_terminal()
}

/// A spinner with a message (`{spinner} {msg} [{elapsed}]`), hidden unless
/// stderr is a terminal.
pub(crate) fn spinner(message: &str) -> ProgressBar {
    if !enabled() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
        bar.set_style(style);
    }
    bar.set_message(message.to_string());
    bar
}

/// A bar counting `{pos}/{len}` items with a message, hidden unless stderr is
/// a terminal. The length may be raised later with `set_length`.
pub(crate) fn counter(prefix: &str) -> ProgressBar {
    if !enabled() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {msg} [{elapsed}]")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(prefix.to_string());
    bar
}

/// Runs `work` on this thread while a helper thread calls `update(bar)`
/// every [`TICK`]; then updates once more and clears the bar. Without a
/// visible bar, just runs `work`.
pub(crate) fn poll_while<T>(
    bar: &ProgressBar,
    update: impl Fn(&ProgressBar) + Sync,
    work: impl FnOnce() -> T,
) -> T {
    if bar.is_hidden() {
        return work();
    }
    let (stop, stopped) = mpsc::channel::<()>();
    let result = std::thread::scope(|scope| {
        let update = &update;
        scope.spawn(move || {
            loop {
                update(bar);
                bar.tick();
                match stopped.recv_timeout(TICK) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
        });
        let result = work();
        drop(stop);
        result
    });
    update(bar);
    bar.finish_and_clear();
    result
}

/// `1 file`, `2 files`.
pub(crate) fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The one-line summary of a long command, on stderr.
pub(crate) fn summary(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Runs `work` with a spinner that ticks by itself.
pub(crate) fn spin_while<T>(message: &str, work: impl FnOnce() -> T) -> T {
    let bar = spinner(message);
    if bar.is_hidden() {
        return work();
    }
    bar.enable_steady_tick(TICK);
    let result = work();
    bar.finish_and_clear();
    result
}
