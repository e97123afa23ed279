//! Progress on stderr for people at a terminal, and nothing at all in cron.
//!
//! A spinner or bar is drawn only when stderr is a TTY and the user did not
//! pass `-q`; everywhere else every method is a no-op, so callers never check.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner or a bar, or nothing when nobody is watching.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

/// Whether progress should be drawn: stderr is a terminal and verbosity ≥ 0.
pub fn visible(verbosity: i8) -> bool {
    verbosity >= 0 && std::io::stderr().is_terminal()
}

impl Progress {
    /// Nothing drawn.
    pub fn hidden() -> Progress {
        Progress { bar: None }
    }

    /// A spinner with a message, for a step of unknown length.
    pub fn spinner(verbosity: i8, message: impl Into<String>) -> Progress {
        if !visible(verbosity) {
            return Progress::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar: Some(bar) }
    }

    /// A counter of records for a step with no known total.
    pub fn counter(verbosity: i8, message: impl Into<String>) -> Progress {
        if !visible(verbosity) {
            return Progress::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}: {human_pos} records ({per_sec})")
                .expect("a valid template"),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar: Some(bar) }
    }

    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    pub fn set_message(&self, message: impl Into<String>) {
        if let Some(b) = &self.bar {
            b.set_message(message.into());
        }
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// Print a line above the progress without tearing it.
    pub fn println(&self, line: impl AsRef<str>) {
        match &self.bar {
            Some(b) => b.println(line.as_ref()),
            None => eprintln!("{}", line.as_ref()),
        }
    }

    /// Remove it from the screen.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar
            && !b.is_finished()
        {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_means_nothing_drawn() {
        let p = Progress::spinner(-1, "working");
        assert!(!p.is_visible());
        p.inc(3);
        p.set_message("still working");
        p.finish();
    }
}
