# Installs the Debian packages weft's scripts call, when missing. Sourced by test.sh and
# demo.sh; needs root (apt-get).
weft_install_deps() {
    declare -A tool_pkg=([nft]=nftables [ip]=iproute2 [bridge]=iproute2 [iperf3]=iperf3 [ping]=iputils-ping [dig]=bind9-dnsutils [curl]=curl [python3]=python3 [conntrack]=conntrack)
    local missing=() tool
    for tool in "${!tool_pkg[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("${tool_pkg[$tool]}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            $(printf '%s\n' "${missing[@]}" | sort -u)
    fi
    for tool in "${!tool_pkg[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || { echo "$tool is still missing" >&2; return 1; }
    done
}
