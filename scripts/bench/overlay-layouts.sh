#!/usr/bin/env bash
# Which overlay layout costs what, built by hand with ip(8), no weft: two "hosts" (namespaces
# on one underlay bridge), and between them, in the same run, iperf3 TCP over
#   under: the bare underlay, host namespace to host namespace;
#   A:     libnetwork's (and weft's) layout: sandbox veth -> bridge in a network namespace ->
#          vxlan (created in the host namespace, moved in), static FDB and neighbour entries;
#   B:     a macvlan (bridge mode) on the same kind of vxlan, moved into the sandbox: no veth,
#          no bridge;
#   C:     A with br_netfilter off in the network namespace (net.bridge.bridge-nf-call-*: a
#          new namespace starts with them on, so every bridged frame goes through the IP
#          hooks of netfilter).
# Prints Gbit/s per path for each of REPS rounds. Root only; namespaces ovl-*; addresses
# 198.18.9.0/24 (underlay) and 198.19.90-92.0/24 (overlays).
set -euo pipefail
REPS=${REPS:-3}
SECONDS_PER_TEST=${SECONDS_PER_TEST:-4}
P=ovl-
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
cleanup() {
    for n in $(ip netns list | awk '{print $1}' | grep "^$P" || true); do
        ip netns pids "$n" | xargs -r kill -9
        ip netns del "$n"
    done
}
trap cleanup EXIT
cleanup
x() { ip -n "$P$1" "${@:2}"; }
# bridged L VNI NET I [netfilter-off]: host I's part of layout A (or C) under the letter L:
# vxlan VNI made in the host and moved into namespace ov<L><I>, a bridge there, a veth into
# sandbox sb<L><I> with 198.19.NET.I and MAC 02:00:00:00:0<L>:0<I>.
bridged() {
    local l=$1 vni=$2 net=$3 i=$4
    ip netns add ${P}ov$l$i
    ip netns add ${P}sb$l$i
    if [ "${5:-}" = netfilter-off ]; then
        for f in iptables ip6tables arptables; do
            ip netns exec ${P}ov$l$i sysctl -qw net.bridge.bridge-nf-call-$f=0
        done
    fi
    x h$i link add vx$l type vxlan id "$vni" dstport 4789 local 198.18.9.$i nolearning proxy
    x h$i link set vx$l netns ${P}ov$l$i
    x ov$l$i link add br0 type bridge
    x ov$l$i link set vx$l master br0 mtu 1450 up
    x ov$l$i link set br0 mtu 1450 up
    x ov$l$i link add ve type veth peer name eth0 netns ${P}sb$l$i
    x ov$l$i link set ve master br0 mtu 1450 up
    x sb$l$i link set eth0 address 02:00:00:00:0$l:0$i mtu 1450 up
    x sb$l$i addr add 198.19.$net.$i/24 dev eth0
}
ip netns add ${P}ul
x ul link add ul0 type bridge
x ul link set ul0 up
for i in 1 2; do
    ip netns add ${P}h$i
    x ul link add h$i type veth peer name eth0 netns ${P}h$i
    x ul link set h$i master ul0 up
    x h$i addr add 198.18.9.$i/24 dev eth0
    x h$i link set eth0 up
    x h$i link set lo up
    bridged a 501 90 "$i"
    bridged c 503 92 "$i" netfilter-off
    # B: macvlan on the vxlan
    ip netns add ${P}ovb$i
    ip netns add ${P}sbb$i
    x h$i link add vxb type vxlan id 502 dstport 4789 local 198.18.9.$i nolearning proxy
    x h$i link set vxb netns ${P}ovb$i
    x ovb$i link set vxb mtu 1450 up
    x ovb$i link add link vxb name mv type macvlan mode bridge
    x ovb$i link set mv netns ${P}sbb$i
    x sbb$i link set mv address 02:00:00:00:0b:0$i mtu 1450 up
    x sbb$i addr add 198.19.91.$i/24 dev mv
done
for i in 1 2; do
    o=$((3 - i))
    x ova$i neigh replace 198.19.90.$o lladdr 02:00:00:00:0a:0$o dev vxa nud permanent
    bridge -n ${P}ova$i fdb append 02:00:00:00:0a:0$o dev vxa dst 198.18.9.$o self permanent
    x ovb$i neigh replace 198.19.91.$o lladdr 02:00:00:00:0b:0$o dev vxb nud permanent
    bridge -n ${P}ovb$i fdb append 02:00:00:00:0b:0$o dev vxb dst 198.18.9.$o self permanent
    x ovc$i neigh replace 198.19.92.$o lladdr 02:00:00:00:0c:0$o dev vxc nud permanent
    bridge -n ${P}ovc$i fdb append 02:00:00:00:0c:0$o dev vxc dst 198.18.9.$o self permanent
done
gbps() {
    local server=$1 client=$2 ip=$3
    ip netns exec "$P$server" iperf3 -s -1 -D
    sleep 0.3
    timeout 60 ip netns exec "$P$client" iperf3 -c "$ip" -t "$SECONDS_PER_TEST" -J |
        python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}
echo "round  under  A(veth+bridge)  B(macvlan)  C(A, br_netfilter off)   Gbit/s"
for r in $(seq 1 "$REPS"); do
    u=$(gbps h2 h1 198.18.9.2)
    a=$(gbps sba2 sba1 198.19.90.2)
    b=$(gbps sbb2 sbb1 198.19.91.2)
    c=$(gbps sbc2 sbc1 198.19.92.2)
    echo "$r      $u  $a           $b       $c"
done
