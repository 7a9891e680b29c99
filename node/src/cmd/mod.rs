//! One file per `weft` subcommand: parse, call the API, print, map the error.

pub mod agent;
pub mod cluster;
pub mod diag;
pub mod endpoint;
pub mod exec;
pub mod keys;
pub mod network;
pub mod node;
pub mod run;
pub mod sandbox;
pub mod service;
pub mod version;

use crate::client::{CallError, Client};
use crate::output::Format;

/// What every client command gets: the API client and the output format.
#[derive(Debug)]
pub struct Ctx {
    pub client: Client,
    pub format: Format,
}

/// Parses an object reference (a name, an id or an id prefix) from the command line:
/// an empty one would reach no API path, so it is refused here with its meaning.
pub fn reference(s: &str) -> Result<String, String> {
    match s.is_empty() {
        true => Err("the name or id is empty: give a name, an id or an id prefix".to_owned()),
        false => Ok(s.to_owned()),
    }
}

/// Escapes a path segment (names and ids are validated, but user references are not).
pub fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs `f` for each item, reporting each failure on stderr and failing at the end if
/// any failed (Docker's behaviour for `rm A B C`).
pub async fn for_each<F, Fut>(items: &[String], mut f: F) -> Result<(), CallError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), CallError>>,
{
    let mut failures = Vec::new();
    for item in items {
        if let Err(e) = f(item.clone()).await {
            failures.push(e);
        }
    }
    match failures.len() {
        0 => Ok(()),
        1 if items.len() == 1 => Err(failures.remove(0)),
        n => {
            // Each failure gets its own line; the last line is the summary.
            for e in &failures {
                eprintln!("error: {e}");
            }
            Err(CallError::Transport(anyhow::anyhow!(
                "{n} of {} failed",
                items.len()
            )))
        }
    }
}
