#!/usr/bin/env bash
# weft doing its job on this machine: three "hosts" (network namespaces on one underlay
# bridge) form a cluster through a seed address, an overlay (VXLAN) network is created on one
# of them and appears on the others, and a sandbox on each host reaches the others across
# hosts by ICMP and TCP, a service answers by name and balances requests, and a sandbox reaches
# a server outside the cluster through its host. Then everything is removed, also when a step
# fails.
# Needs root. Everything lives in namespaces named weft-demo-*; addresses 198.18.0.0/15
# (198.18.0.<i>/24 for the hosts, 198.19.0.0/16 for weft's networks).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/demo.sh: run as root: weft creates network namespaces, links and nftables rules" >&2
    exit 1
fi
source scripts/lib/deps.sh
weft_install_deps

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "scripts/demo.sh: $*" >&2; exit 1; }

# wait_for WHAT TRIES CMD...: runs CMD quietly every 0.1 s until it succeeds, at most TRIES
# times (a command is bounded by 'timeout 5' each try; the functions below bound their own
# calls); fails the demo with WHAT otherwise.
wait_for() {
    local what=$1 tries=$2 _ bound=(timeout 5)
    shift 2
    [ "$(type -t "$1")" = function ] && bound=()
    for _ in $(seq 1 "$tries"); do
        "${bound[@]}" "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "timed out waiting for $what"
}

hosts=3
prefix="weft-demo-"
underlay="${prefix}ul"
host_ns() { echo "${prefix}h$1"; }
host_addr() { echo "198.18.0.$1"; }

# Another demo running (or one killed with SIGKILL) would collide with this one; refuse
# rather than delete namespaces this run did not create.
stale=$(ip netns list | awk '{print $1}' | grep "^$prefix" | paste -sd ' ' || true)
[ -z "$stale" ] || die "namespaces named $prefix* exist already (another demo running?): $stale"

step "building weft (release)"
cargo build --release -q -p weft
weft_bin="$PWD/target/release/weft"

work=$(mktemp -d /tmp/weft-demo.XXXXXX)
# The echoed commands go to fd 3, the script's stdout, so that captures and pipes of a
# command's output do not swallow the command line.
exec 3>&1
sock() { echo "$work/h$1/weft.sock"; }
# weft I ARGS: the CLI against host I's agent (WEFT_HOST=unix://<its socket>), echoed.
weft() {
    local i=$1
    shift
    echo "[h$i]\$ weft $*" >&3
    WEFT_HOST="unix://$(sock "$i")" "$weft_bin" "$@"
}
# q I ARGS: the same, not echoed and bounded to 10 s (for waits, look-ups and clean-up).
q() {
    local i=$1
    shift
    WEFT_HOST="unix://$(sock "$i")" timeout 10 "$weft_bin" "$@"
}
agent_pid=() # host number -> pid of its agent
summary=""   # set by the last step; printed once everything is removed
started=$SECONDS

cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    if [ "$status" -ne 0 ]; then
        echo
        echo "scripts/demo.sh: failed (exit $status); the agents' last log lines:" >&2
        for i in "${!agent_pid[@]}"; do
            echo "--- h$i ($work/h$i/agent.log)" >&2
            tail -n 15 "$work/h$i/agent.log" >&2
        done
        echo "cleaning up" >&2
    fi
    # Sandboxes and the network through weft, while the agents run (quiet, bounded).
    for i in "${!agent_pid[@]}"; do
        kill -0 "${agent_pid[$i]}" 2>/dev/null || continue
        q "$i" sandbox rm -f "s$i" "web$i" >/dev/null 2>&1
    done
    for i in "${!agent_pid[@]}"; do
        kill -0 "${agent_pid[$i]}" 2>/dev/null || continue
        q "$i" service rm web >/dev/null 2>&1
        q "$i" network rm -f demo-ov >/dev/null 2>&1 && break
    done
    # Only the agents this script started, by pid: SIGTERM (a graceful leave), then
    # SIGKILL for one still running after 10 s.
    for i in "${!agent_pid[@]}"; do
        kill -TERM "${agent_pid[$i]}" 2>/dev/null
    done
    for i in "${!agent_pid[@]}"; do
        for _ in $(seq 1 100); do
            kill -0 "${agent_pid[$i]}" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "${agent_pid[$i]}" 2>/dev/null
        wait "${agent_pid[$i]}" 2>/dev/null
    done
    [ ${#agent_pid[@]} -eq 0 ] || echo "stopped the agents (pids ${agent_pid[*]})"
    # The namespaces: only when this run made them (the check above found none before it).
    # Agents' own namespaces (weft-demo-h<i>-*) first, then the hosts, then the underlay;
    # whatever still runs in one (an iperf3, a sleep) is killed first.
    if [ -n "${owns_namespaces:-}" ]; then
        local deleted=0
        for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix" | sort -r); do
            ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
            ip netns delete "$ns" && deleted=$((deleted + 1))
        done
        echo "deleted $deleted namespaces named $prefix*"
        local left
        left=$(ip netns list | awk '{print $1}' | grep "^$prefix" | paste -sd ' ')
        if [ -n "$left" ]; then
            echo "scripts/demo.sh: namespaces left: $left" >&2
            status=1
        fi
    fi
    rm -rf "$work"
    if [ "$status" -eq 0 ] && [ -n "$summary" ]; then
        echo
        echo "$summary"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "the underlay: bridge ul0 in $underlay, hosts $(host_ns 1)..$(host_ns $hosts) at $(host_addr 1)..$(host_addr $hosts)/24"
owns_namespaces=1
ip netns add "$underlay"
ip -n "$underlay" link set lo up
ip -n "$underlay" link add ul0 type bridge
ip -n "$underlay" link set ul0 up
for i in $(seq 1 $hosts); do
    ns=$(host_ns "$i")
    ip netns add "$ns"
    # Both veth ends are made where they live: nothing touches this machine's namespace.
    ip -n "$underlay" link add "h$i" type veth peer name eth0 netns "$ns"
    ip -n "$underlay" link set "h$i" master ul0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$(host_addr "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
done
for i in $(seq 2 $hosts); do
    wait_for "$(host_ns 1) to reach $(host_addr "$i")" 50 \
        ip netns exec "$(host_ns 1)" ping -c 1 -W 1 "$(host_addr "$i")"
done
ip -n "$(host_ns 1)" -br addr show eth0

# start_agent I EXTRA...: host I's agent inside its namespace, logging to $work/h<I>/agent.log.
# nsenter --net enters only the network namespace. 'ip netns exec' would also give the
# agent a mount namespace of its own, hiding the sandbox namespaces it mounts.
start_agent() {
    local i=$1
    shift
    mkdir -p "$work/h$i"
    nsenter --net="/run/netns/$(host_ns "$i")" "$weft_bin" agent \
        --data-dir "$work/h$i/data" --api-socket "$(sock "$i")" \
        --netns-prefix "$(host_ns "$i")-" --node-name "h$i" \
        --listen-addr "$(host_addr "$i"):7946" --advertise-addr "$(host_addr "$i")" \
        --local-addr-pool 198.19.0.0/17 --default-addr-pool 198.19.128.0/17 \
        --gossip-interval 100ms --diagnostic-addr off "$@" \
        </dev/null >/dev/null 2>"$work/h$i/agent.log" &
    agent_pid[$i]=$!
    local _
    for _ in $(seq 1 100); do
        kill -0 "${agent_pid[$i]}" 2>/dev/null || die "the agent of h$i exited while starting"
        [ -S "$(sock "$i")" ] && q "$i" version >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo "h$i: agent pid ${agent_pid[$i]}, socket $(sock "$i"), log $work/h$i/agent.log"
}

step "h1 starts the cluster (--init, a manager)"
start_agent 1 --init
weft 1 version
wait_for "h1's worker token" 50 q 1 cluster token worker
token=$(q 1 cluster token worker)
echo "worker token: ${token:0:24}..."

step "h2 and h3 join through the seed $(host_addr 1):7947 (h1's RPC port) with the worker token"
for i in $(seq 2 $hosts); do
    start_agent "$i" --join "$(host_addr 1):7947" --token "$token"
done

step "every host sees $hosts alive nodes"
alive() { [ "$(q "$1" --format json node ls | grep -o '"status": *"alive"' | wc -l)" -eq "$hosts" ]; }
for i in $(seq 1 $hosts); do
    wait_for "h$i to see $hosts alive nodes" 150 alive "$i"
done
weft 3 node ls

step "an overlay network, created on h2 (a worker: the manager allocates it over RPC)"
net_id=$(weft 2 network create -d overlay --subnet 198.19.200.0/24 demo-ov)
echo "$net_id"
for i in $(seq 1 $hosts); do
    wait_for "h$i to have demo-ov" 100 q "$i" network inspect demo-ov
done
weft 3 network ls
for i in $(seq 1 $hosts); do
    # Captured, not piped into 'grep -q': with pipefail, grep quitting early fails the pipe.
    info=$(q "$i" --format json network inspect demo-ov)
    [[ $info == *"\"$net_id\""* ]] || die "h$i's demo-ov does not have the id $net_id"
done
echo "every host has demo-ov with id ${net_id:0:12}"

step "a sandbox on each host, on demo-ov"
declare -A ip=()
for i in $(seq 1 $hosts); do
    weft "$i" run -d --name "s$i" --network demo-ov -- sleep 600
done
for i in $(seq 1 $hosts); do
    weft "$i" exec "s$i" -- ip -br addr show eth0
    ip[$i]=$(q "$i" exec "s$i" -- ip -4 -o addr show eth0 | awk '{split($4, a, "/"); print a[1]}')
    [ -n "${ip[$i]}" ] || die "s$i has no IPv4 address on eth0"
done

step "s1 (on h1) reaches s2 (h2) and s3 (h3) across hosts (ICMP over VXLAN)"
for i in $(seq 2 $hosts); do
    wait_for "s1 to reach s$i (${ip[$i]})" 50 q 1 exec s1 -- ping -n -c 1 -W 1 "${ip[$i]}"
done
for i in $(seq 2 $hosts); do
    weft 1 exec s1 -- ping -n -c 3 -i 0.2 "${ip[$i]}"
done

step "s1 sends to s2 over TCP across hosts (iperf3, 2 s)"
weft 2 exec s2 -- iperf3 -s -1 -D
wait_for "iperf3 in s2 to listen" 30 q 2 exec s2 -- sh -c 'ss -Htln | grep -q ":5201 "'
iperf=$(weft 1 exec s1 -- iperf3 -c "${ip[2]}" -t 2 -f g | grep -E "sender|receiver")
echo "$iperf"
rate=$(echo "$iperf" | awk '/receiver/ {print $(NF-2), $(NF-1)}')

step "the overlay's MTU: the underlay's 1500 less 50 bytes of VXLAN"
weft 1 exec s1 -- ip link show eth0
link=$(q 1 exec s1 -- ip -o link show eth0)
[[ $link == *" mtu 1450 "* ]] || die "s1's eth0 does not have mtu 1450"

step "a service: web, with a backend on h2 and one on h3 (a small HTTP server each)"
weft 3 service create --network demo-ov web
for i in 2 3; do
    mkdir -p "$work/www$i" && echo "web$i on h$i" >"$work/www$i/index.html"
    weft "$i" run -d --name "web$i" --network demo-ov --service web -- \
        python3 -m http.server 80 --bind 0.0.0.0 --directory "$work/www$i"
done
for i in 2 3; do
    wait_for "web$i to listen" 50 q "$i" exec "web$i" -- sh -c 'ss -Htln | grep -q ":80 "'
done
weft 1 service inspect web

step "s1 (on h1) finds web by name (embedded DNS at 127.0.0.11) and its connections are spread over the backends"
vip=$(q 1 --format json service inspect web | grep -o '"vip": *"[0-9.]*"' | grep -o '[0-9.]*[0-9]')
both_tasks() { [ "$(q 1 exec s1 -- dig @127.0.0.11 +short tasks.web | wc -l)" -eq 2 ]; }
wait_for "tasks.web to list both backends" 50 both_tasks
weft 1 exec s1 -- dig @127.0.0.11 +short web
weft 1 exec s1 -- dig @127.0.0.11 +short tasks.web
answers=$(q 1 exec s1 -- sh -c 'for i in $(seq 1 20); do curl -s --max-time 2 http://web/; done')
echo "$answers" | sort | uniq -c
spread=$(echo "$answers" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $2; sep=", "}')
[ "$(echo "$answers" | sort -u | wc -l)" -eq 2 ] || die "20 requests to web did not reach both backends"

step "the way out: s1 fetches a page from a server outside the cluster (a namespace on the underlay that runs no agent) through its own host (gateway network weft_gwbridge, masqueraded)"
outside="${prefix}out"
ip netns add "$outside"
ip -n "$underlay" link add out type veth peer name eth0 netns "$outside"
ip -n "$underlay" link set out master ul0 up
ip -n "$outside" link set lo up
ip -n "$outside" addr add 198.18.0.250/24 dev eth0
ip -n "$outside" link set eth0 up
mkdir -p "$work/outside" && echo "a page from outside the cluster" >"$work/outside/index.html"
# Killed with the namespace by the clean-up, whatever happens.
nsenter --net="/run/netns/$outside" python3 -m http.server 8080 --bind 198.18.0.250 \
    --directory "$work/outside" </dev/null >/dev/null 2>&1 &
disown $! # no job report when the clean-up kills it
wait_for "the outside server to listen" 50 ip netns exec "$outside" sh -c 'ss -Htln | grep -q ":8080 "'
weft 1 exec s1 -- ip route show default
page=$(weft 1 exec s1 -- curl -s --max-time 3 http://198.18.0.250:8080/)
echo "$page"
[ "$page" = "a page from outside the cluster" ] || die "s1 did not reach the server outside the cluster"

step "cleaning up"
for i in $(seq 1 $hosts); do
    weft "$i" sandbox rm -f "s$i"
done
for i in 2 3; do
    weft "$i" sandbox rm -f "web$i"
done
wait_for "web's backends to be gone" 50 q 1 service rm web
weft 2 network rm demo-ov
# The trap stops the agents (SIGTERM, by pid), deletes the namespaces, then prints this.
summary="done in $((SECONDS - started)) s after the build: $hosts hosts (1 manager, $((hosts - 1)) workers) formed one cluster; on overlay demo-ov (VXLAN, mtu 1450) s1 reached s2 and s3 by ICMP and s2 at $rate over TCP; service web ($vip) answered by name and balanced 20 requests ($spread); s1 fetched a page from a server outside the cluster through h1; agents stopped, weft-demo-* namespaces deleted"
