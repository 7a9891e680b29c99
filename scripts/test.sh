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
declare -A tool_pkg=([nft]=nftables [ip]=iproute2 [bridge]=iproute2 [iperf3]=iperf3 [ping]=iputils-ping)
missing=()
for tool in "${!tool_pkg[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${tool_pkg[$tool]}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "scripts/test.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u)
fi
for tool in "${!tool_pkg[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "scripts/test.sh: $tool is still missing" >&2; exit 1; }
done

export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --workspace --all-targets --all-features -- -D warnings
# Crash points are compiled in for the tests only (feature crash-points).
cargo build --workspace --all-features --bins
cargo test --workspace --all-features --no-fail-fast
