//! Printing: text for people, `--json` for scripts.

use serde::Serialize;

/// Where results go.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json`.
    pub json: bool,
}

impl Output {
    /// An output.
    pub fn new(json: bool) -> Self {
        Output { json }
    }

    /// Print `value` as one JSON line with `--json`, else `text()`.
    pub fn emit<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        if self.json {
            match serde_json::to_string(value) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("error: cannot serialize output: {e}"),
            }
        } else {
            println!("{}", text());
        }
    }

    /// Print a note for people only (stderr, never in `--json` output).
    pub fn note(&self, text: &str) {
        if !self.json {
            eprintln!("{text}");
        }
    }
}
