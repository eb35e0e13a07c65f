//! Progress for the commands that are not `build` (which has its phases): a byte bar where
//! the work reads a known amount (`convert`), a spinner elsewhere (`mkfs`, `disk`, the ISO);
//! on a terminal a bar, otherwise one line at the end; nothing with `-q`.

use std::io::Write;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use imagetool::blockio::{Extents, ReadAt};
use indicatif::{ProgressBar, ProgressStyle};

use super::Verbosity;

/// Where and how progress is shown.
pub struct Meter {
    name: &'static str,
    bar: Option<ProgressBar>,
    /// A line at the end (not a terminal, or `-v`).
    line: bool,
    start: Instant,
    read: AtomicU64,
}

impl Meter {
    fn with(name: &'static str, total: Option<u64>) -> Self {
        use std::io::IsTerminal;
        let verbosity = super::verbosity();
        let terminal = std::io::stderr().is_terminal();
        let bar = (verbosity == Verbosity::Normal && terminal).then(|| match total {
            Some(t) => {
                let bar = ProgressBar::new(t);
                if let Ok(style) = ProgressStyle::with_template(
                    "{msg:<10} [{bar:40}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_message(name);
                bar
            }
            None => {
                let bar = ProgressBar::new_spinner().with_message(name);
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            }
        });
        Self {
            name,
            bar,
            line: verbosity == Verbosity::Verbose || (verbosity == Verbosity::Normal && !terminal),
            start: Instant::now(),
            read: AtomicU64::new(0),
        }
    }

    /// A byte meter over what `src` holds (its allocated extents).
    ///
    /// # Errors
    /// None today; kept fallible for sources whose extents cannot be listed.
    pub fn new<S: ReadAt + Extents + ?Sized>(name: &'static str, src: &S) -> Result<Self> {
        let total = src
            .data_extents()
            .map(|e| e.iter().map(|r: &Range<u64>| r.end - r.start).sum())
            .unwrap_or_else(|_| src.size());
        Ok(Self::with(name, Some(total)))
    }

    /// A spinner (work whose amount is not known up front).
    pub fn spinner(name: &'static str) -> Self {
        Self::with(name, None)
    }

    /// `src`, counting what is read from it into this meter.
    pub fn wrap<'a, S: ?Sized>(&'a self, src: &'a S) -> Metered<'a, S> {
        Metered {
            inner: src,
            meter: self,
        }
    }

    /// Ends the meter: clears the bar; prints one line "name  secs  detail" unless on a
    /// terminal without `-v` (where the command's report follows) or with `-q`.
    pub fn finish(&self, detail: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.line {
            let secs = self.start.elapsed().as_secs_f64();
            let _ = writeln!(
                std::io::stderr(),
                "imagetool: {:<10} {secs:>7.2}s  {detail}",
                self.name
            );
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A source whose reads advance a [`Meter`].
pub struct Metered<'a, S: ?Sized> {
    inner: &'a S,
    meter: &'a Meter,
}

impl<S: ReadAt + ?Sized> ReadAt for Metered<'_, S> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_exact_at(buf, offset)?;
        let done = self
            .meter
            .read
            .fetch_add(buf.len() as u64, Ordering::Relaxed)
            + buf.len() as u64;
        if let Some(bar) = &self.meter.bar {
            bar.set_position(done);
        }
        Ok(())
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
}

impl<S: Extents + ?Sized> Extents for Metered<'_, S> {
    fn data_extents(&self) -> std::io::Result<Vec<Range<u64>>> {
        self.inner.data_extents()
    }
}
