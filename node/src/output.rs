//! Printing results: a human table by default, JSON with `--format json`.

use crate::client::CallError;
use serde::Serialize;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Prints `value` as pretty JSON on stdout; a value that does not serialise or a stdout
/// that cannot be written is an error (and a non-zero exit), never silence.
pub fn json<T: Serialize>(value: &T) -> Result<(), CallError> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value).map_err(|e| {
        CallError::Transport(anyhow::anyhow!("cannot encode the answer as JSON: {e}"))
    })?;
    writeln!(std::io::stdout().lock(), "{text}")
        .map_err(|e| CallError::Transport(anyhow::anyhow!("cannot write to stdout: {e}")))
}

/// Prints rows under a header, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c.to_string()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", text.join("   ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `-` for an absent value.
pub fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}
