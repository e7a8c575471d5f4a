//! A progress bar for long syncs, on stderr, hidden when not on a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use inlet_core::{RunStats, StreamStats};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Draws one spinner line per sync.
pub struct Bar {
    bar: ProgressBar,
    /// The last progress message, to which a rate-limit wait is appended.
    last: std::sync::Mutex<String>,
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
        Bar {
            bar,
            last: std::sync::Mutex::new(String::new()),
        }
    }

    /// Clear the line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn show(&self, msg: String) {
        self.bar.set_message(msg.clone());
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = msg;
    }

    /// Until `done`, show a rate-limit wait under way in `connector`'s client.
    pub async fn watch_waits(&self, connector: &dyn inlet_core::Connector, done: &AtomicBool) {
        let mut was_waiting = false;
        while !done.load(Ordering::Relaxed) {
            let left = connector.http_stats().waiting_ms;
            if left > 0 || was_waiting {
                let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
                self.bar.set_message(if left > 0 {
                    format!(
                        "{last} — waiting {:.0}s for the rate limit window",
                        (left as f64 / 1000.0).ceil()
                    )
                } else {
                    last
                });
            }
            was_waiting = left > 0;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl inlet_engine::Progress for Bar {
    fn stream_started(&self, stream: &str, resumed: bool) {
        let how = if resumed {
            " (resuming from checkpoint)"
        } else {
            ""
        };
        self.show(format!("{stream}{how}: starting"));
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
        self.show(format!(
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
