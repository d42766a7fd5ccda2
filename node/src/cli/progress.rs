//! Progress output for long-running commands: a live display on a
//! terminal, plain log lines otherwise, JSON lines with `--json`. All of it
//! goes to stderr; stdout carries only the final JSON result.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use serde_json::json;

use crate::join::{JoinPhase, Progress};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Live lines with a spinner-free "…" for the running phase.
    Terminal,
    /// `label phase=… ms=… note` lines.
    Plain,
    /// One JSON object per finished phase.
    Json,
}

impl Style {
    pub(crate) fn detect(json: bool) -> Style {
        if json {
            Style::Json
        } else if std::io::stderr().is_terminal() {
            Style::Terminal
        } else {
            Style::Plain
        }
    }
}

/// Progress of one party, labelled.
#[derive(Debug)]
pub(crate) struct Reporter {
    pub(crate) style: Style,
    pub(crate) label: String,
}

impl Progress for Reporter {
    fn started(&mut self, phase: JoinPhase) {
        if self.style == Style::Terminal {
            eprintln!("  {} {:<12} …", self.label, phase.to_string());
        }
    }

    fn finished(&mut self, phase: JoinPhase, took: Duration, note: &str) {
        let ms = took.as_secs_f64() * 1000.0;
        let mut err = std::io::stderr().lock();
        let _ = match self.style {
            Style::Terminal => writeln!(
                err,
                "  {} {:<12} ✓ {ms:>8.1} ms  {note}",
                self.label,
                phase.to_string()
            ),
            Style::Plain => writeln!(err, "{} phase={phase} ms={ms:.1} {note}", self.label),
            Style::Json => writeln!(
                err,
                "{}",
                json!({"party": self.label, "phase": phase, "ms": (ms * 10.0).round() / 10.0, "note": note})
            ),
        };
    }
}
