#!/usr/bin/env bash
# The one test command: installs what the tests need, checks formatting and lints,
# builds, and runs every test, including the ones that need root and network namespaces.
# Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: run as root: the tests create network namespaces, links and nftables rules" >&2
    exit 1
fi

# Debian packages the tests and benchmarks call; installed only when missing.
source scripts/lib/deps.sh
weft_install_deps

export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --workspace --all-targets --all-features -- -D warnings
# Crash points are compiled in for the tests only (feature crash-points).
cargo build --workspace --all-features --bins
cargo test --workspace --all-features --no-fail-fast
