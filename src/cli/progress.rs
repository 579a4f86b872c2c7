//! Terminal progress for a run: one line per step status, action log lines
//! indented under their step when verbose.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use crate::engine::RunSink;
use crate::model::NewEvent;

pub struct Progress {
    verbose: bool,
    colour: bool,
    out: Mutex<std::io::Stderr>,
}

impl Progress {
    pub fn new(verbose: bool) -> Progress {
        Progress {
            verbose,
            colour: std::io::stderr().is_terminal(),
            out: Mutex::new(std::io::stderr()),
        }
    }

    fn line(&self, text: &str) {
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{text}");
        }
    }
}

/// Removes ANSI colour sequences (`ESC [ … m`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[async_trait]
impl RunSink for Progress {
    async fn emit(&self, event: NewEvent) {
        let body = &event.body;
        let message = body.get("message").and_then(Value::as_str).unwrap_or_default();
        let message = if self.colour {
            message.to_owned()
        } else {
            strip_ansi(message)
        };
        match (
            body.get("stepId").and_then(Value::as_str),
            body.get("status").and_then(Value::as_str),
        ) {
            (Some(step), Some(status)) => {
                let mark = match status {
                    "processing" => "…",
                    "completed" => "✓",
                    "skipped" => "-",
                    "failed" => "✗",
                    _ => "•",
                };
                self.line(&format!("{mark} {step}: {message}"));
            }
            (Some(_), None) if self.verbose => {
                for line in message.lines() {
                    self.line(&format!("    {line}"));
                }
            }
            (Some(_), None) => {}
            (None, _) => self.line(&message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_codes_are_stripped() {
        assert_eq!(strip_ansi("\u{1b}[32minfo\u{1b}[39m: hi"), "info: hi");
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
