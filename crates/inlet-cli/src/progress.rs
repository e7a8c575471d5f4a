//! A progress bar for long syncs, on stderr, hidden when not on a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use inlet_core::{RunStats, StreamStats};
use std::io::IsTerminal;
use std::time::Duration;

/// Draws one spinner line per sync.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A bar for `connection`; hidden unless both stdout and stderr are terminals.
    pub fn new(connection: &str) -> Self {
        let visible = std::io::stderr().is_terminal() && std::io::stdout().is_terminal();
        let bar = if visible {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        let style = ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(connection.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar { bar }
    }

    /// Clear the line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl inlet_engine::Progress for Bar {
    fn stream_started(&self, stream: &str, resumed: bool) {
        let how = if resumed {
            " (resuming from checkpoint)"
        } else {
            ""
        };
        self.bar.set_message(format!("{stream}{how}: starting"));
    }

    fn page_committed(&self, stream: &str, s: &StreamStats) {
        let secs = self.bar.elapsed().as_secs_f64().max(0.001);
        let wait = if s.stats.rate_limit_wait_ms > 0 {
            format!(
                ", waited {:.1}s for rate limit",
                s.stats.rate_limit_wait_ms as f64 / 1000.0
            )
        } else {
            String::new()
        };
        self.bar.set_message(format!(
            "{stream}: {} records, {} pages, {} requests, {:.0} records/s{wait}",
            s.stats.fetched,
            s.stats.pages,
            s.stats.requests,
            s.stats.fetched as f64 / secs
        ));
    }

    fn attachment_done(&self, s: &RunStats) {
        self.bar.set_message(format!(
            "attachments: {} fetched, {} failed, {} skipped",
            s.attachments_fetched, s.attachments_failed, s.attachments_skipped
        ));
    }
}
