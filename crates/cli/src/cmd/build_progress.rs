//! How `build` (and `build --variant`) report progress: `--progress plain|bar|json|none`.

use std::io::Write;
use std::time::Duration;

use clap::ValueEnum;
use imagetool::build::{Phase, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    Plain,
    Bar,
    Json,
    None,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

/// One line per phase on stderr: suits a terminal without bars and a Nix build log.
#[derive(Default)]
pub struct Plain {
    bytes: Option<u64>,
}

impl Progress for Plain {
    fn bytes(&mut self, _phase: Phase, _done: u64, total: u64) {
        self.bytes = Some(total);
    }
    fn finished(&mut self, phase: Phase, elapsed: Duration, detail: &str) {
        let secs = elapsed.as_secs_f64();
        let rate = match self.bytes.take() {
            Some(b) if secs > 0.0 => format!(" ({:.1} MiB at {:.0} MiB/s)", mib(b), mib(b) / secs),
            _ => String::new(),
        };
        let _ = writeln!(
            std::io::stderr(),
            "imagetool: {:<10} {secs:>7.2}s  {detail}{rate}",
            phase.name(),
        );
    }
}

/// Nothing.
pub struct Quiet;

impl Progress for Quiet {}

/// One JSON object per event on stdout.
pub struct Json;

/// Prints one event line; a closed stdout does not stop the build.
pub fn emit(event: &serde_json::Value) {
    let _ = writeln!(std::io::stdout(), "{event}");
}

impl Progress for Json {
    fn started(&mut self, phase: Phase) {
        emit(&serde_json::json!({"event": "started", "phase": phase.name()}));
    }
    fn bytes(&mut self, phase: Phase, done: u64, total: u64) {
        emit(
            &serde_json::json!({"event": "bytes", "phase": phase.name(), "done": done, "total": total}),
        );
    }
    fn finished(&mut self, phase: Phase, elapsed: Duration, detail: &str) {
        emit(&serde_json::json!({
            "event": "finished",
            "phase": phase.name(),
            "seconds": elapsed.as_secs_f64(),
            "detail": detail,
        }));
    }
}

/// indicatif: a spinner per phase, a byte bar for write and convert.
#[derive(Default)]
pub struct Bars {
    bar: Option<ProgressBar>,
}

impl Progress for Bars {
    fn started(&mut self, phase: Phase) {
        let bar = ProgressBar::new_spinner().with_message(phase.name());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.bar = Some(bar);
    }
    fn bytes(&mut self, phase: Phase, done: u64, total: u64) {
        let Some(bar) = &self.bar else { return };
        if bar.length() != Some(total) {
            bar.set_length(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{msg:<10} [{bar:40}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(phase.name());
        }
        bar.set_position(done);
    }
    fn finished(&mut self, phase: Phase, elapsed: Duration, detail: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let _ = writeln!(
            std::io::stderr(),
            "imagetool: {:<10} {:>7.2}s  {detail}",
            phase.name(),
            elapsed.as_secs_f64()
        );
    }
}
