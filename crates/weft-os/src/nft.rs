//! nftables through the `nft` binary, run inside a namespace.
//!
//! A ruleset is the JSON form of the `nftables` crate's typed [`Nftables`] document, fed to a
//! single `nft -j -f -`: one invocation is one kernel transaction, so a ruleset applies
//! entirely or not at all. The `nft` child is spawned from a thread that entered the target
//! namespace and inherits it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nftables::schema::{NfListObject, NfObject, Nftables};

use crate::error::NftError;
use crate::model::NftTable;
use crate::nsthread;

/// The `nft` binary, looked up in `PATH`.
pub const DEFAULT_NFT: &str = "nft";

/// Runs `nft -j ARGS`, writing `stdin` to it; returns its standard output.
fn run(nft: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, NftError> {
    run_as(nft, Some("-j"), args, stdin)
}

/// Runs `nft [FORMAT] ARGS`, writing `stdin` to it; returns its standard output.
fn run_as(
    nft: &Path,
    format: Option<&str>,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, NftError> {
    let spawn_err = |source| NftError::Spawn {
        program: nft.display().to_string(),
        source,
    };
    let mut child = Command::new(nft)
        .args(format)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // nft reads the whole document before it answers, so this cannot deadlock on stdout.
        pipe.write_all(input.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        return Err(NftError::Failed {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Applies `ruleset` in one transaction in the namespace at `ns` (current when `None`).
/// The outer error is a failure to enter the namespace.
pub async fn apply(
    ns: Option<PathBuf>,
    nft: PathBuf,
    ruleset: &Nftables<'_>,
) -> std::io::Result<Result<(), NftError>> {
    let json = match serde_json::to_string(ruleset) {
        Ok(json) => json,
        Err(e) => return Ok(Err(NftError::Json(e))),
    };
    nsthread::in_netns(ns, move || {
        Ok(run(&nft, &["-f", "-"], Some(&json)).map(drop))
    })
    .await
}

/// Applies `script`, in nft's own syntax, in one transaction in the namespace at `ns`
/// (current when `None`). The outer error is a failure to enter the namespace.
pub async fn apply_script(
    ns: Option<PathBuf>,
    nft: PathBuf,
    script: String,
) -> std::io::Result<Result<(), NftError>> {
    nsthread::in_netns(ns, move || {
        Ok(run_as(&nft, None, &["-f", "-"], Some(&script)).map(drop))
    })
    .await
}

/// Lists the tables in the namespace at `ns` (current when `None`).
pub async fn list_tables(
    ns: Option<PathBuf>,
    nft: PathBuf,
) -> std::io::Result<Result<Vec<NftTable>, NftError>> {
    nsthread::in_netns(ns, move || {
        Ok(run(&nft, &["list", "tables"], None).and_then(|out| parse_tables(&out)))
    })
    .await
}

fn parse_tables(json: &str) -> Result<Vec<NftTable>, NftError> {
    let doc: Nftables<'static> = serde_json::from_str(json).map_err(NftError::Json)?;
    Ok(doc
        .objects
        .iter()
        .filter_map(|o| match o {
            NfObject::ListObject(NfListObject::Table(t)) => Some(NftTable {
                family: t.family,
                name: t.name.to_string(),
            }),
            _ => None,
        })
        .collect())
}

/// A one-command document deleting `table`.
pub fn delete_table_doc(table: &NftTable) -> Nftables<'static> {
    let mut batch = nftables::batch::Batch::new();
    batch.delete(NfListObject::Table(nftables::schema::Table {
        family: table.family,
        name: table.name.clone().into(),
        handle: None,
    }));
    batch.to_nftables()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nftables::types::NfFamily;

    #[test]
    fn parses_nft_list_tables_output() {
        let out = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "weft-lb", "handle": 3}}]}"#;
        let tables = parse_tables(out).unwrap();
        assert_eq!(
            tables,
            vec![NftTable {
                family: NfFamily::INet,
                name: "weft-lb".into()
            }]
        );
    }
}
