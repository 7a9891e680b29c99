#!/usr/bin/env bash
# weft doing its job on this machine: an agent in a namespace of its own (its "host"),
# a bridge network, two sandboxes that reach each other by ICMP and TCP, then clean-up.
# Needs root. Everything lives in namespaces named weft-demo-*; addresses 198.19.42.0/24.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/demo.sh: run as root: weft creates network namespaces, links and nftables rules" >&2
    exit 1
fi
source scripts/lib/deps.sh
weft_install_deps

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "building weft (release)"
cargo build --release -q -p weft
weft_bin="$PWD/target/release/weft"

work=$(mktemp -d /tmp/weft-demo.XXXXXX)
prefix="weft-demo-"
host="${prefix}host"
export WEFT_HOST="unix://$work/weft.sock"
weft() { echo "\$ weft $*"; "$weft_bin" "$@"; }
agent_pid=""

cleanup() {
    set +e
    if [ -n "$agent_pid" ]; then
        "$weft_bin" sandbox rm -f alpha beta >/dev/null 2>&1
        "$weft_bin" network rm -f demo >/dev/null 2>&1
        kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
    fi
    for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix"); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9
        ip netns delete "$ns"
    done
    rm -rf "$work"
}
trap cleanup EXIT

step "starting an agent inside namespace $host (log: $work/agent.log)"
# nsenter --net enters only the network namespace. 'ip netns exec' would also give the
# agent a mount namespace of its own, hiding the sandbox namespaces it mounts.
ip netns add "$host"
ip -n "$host" link set lo up
nsenter --net="/run/netns/$host" "$weft_bin" agent --data-dir "$work/data" --api-socket "$work/weft.sock" \
    --netns-prefix "$prefix" --node-name demo --local-addr-pool 198.19.0.0/16 \
    2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 1 100); do
    [ -S "$work/weft.sock" ] && "$weft_bin" version >/dev/null 2>&1 && break
    sleep 0.05
done
weft version

step "a bridge network and two sandboxes on it"
weft network create --subnet 198.19.42.0/24 demo
weft run -d --name alpha --network demo -- sleep 600
weft run -d --name beta --network demo -- sleep 600
weft network ls
weft sandbox ls

step "alpha reaches beta (ICMP)"
weft exec alpha -- ip -br addr show eth0
weft exec alpha -- ping -c 3 -i 0.2 198.19.42.3

step "alpha sends to beta over TCP (iperf3, 2 s)"
weft exec beta -- iperf3 -s -1 -D
sleep 0.3
weft exec alpha -- iperf3 -c 198.19.42.3 -t 2 -f g | grep -E "sender|receiver"

step "cleaning up"
weft sandbox rm -f alpha beta
weft network rm demo
echo
echo "done: the agent, its namespaces and its links are removed on exit"
