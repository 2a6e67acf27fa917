#!/usr/bin/env bash
# The kube-vpp demo: the VPP simulator and the agent of node-a in standalone
# mode over the manifests in examples/, then what the agent programmed, read
# back from VPP. Run it through `make demo` (which builds bin/ first).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
RUN=.demo
NODE=${NODE:-node-a}
UPLINK=GigabitEthernet0/8/0
UPLINK_ADDR=192.168.10.11/24

rm -rf "$RUN" && mkdir -p "$RUN"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	# The agent gave each example pod of this node a network namespace; a
	# restarted agent would adopt them, but the demo is over.
	if [ -f "$RUN/state/ipam.json" ]; then
		for ns in $(grep -o '/var/run/netns/kvpp-[0-9a-f]*' "$RUN/state/ipam.json" | sort -u); do
			ip netns del "$(basename "$ns")" 2>/dev/null || true
		done
	fi
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting the VPP simulator (API socket $RUN/api.sock, uplink $UPLINK $UPLINK_ADDR)"
"$BIN/vppsim" --socket "$RUN/api.sock" --interface "$UPLINK=$UPLINK_ADDR" >"$RUN/vppsim.log" 2>&1 &
pids+=($!)

say "starting kube-vpp-agent as $NODE over examples/"
KUBE_VPP_PODS_MEMIF_DIR="$RUN/memif" KUBE_VPP_PODS_VHOST_USER_DIR="$RUN/vhost-user" \
	"$BIN/kube-vpp-agent" --node "$NODE" --manifests examples --vpp-socket "$RUN/api.sock" \
	--ctl-socket "$RUN/ctl.sock" --http-listen 127.0.0.1:0 --uplink-interface "$UPLINK" \
	--cni-socket "$RUN/cni.sock" --state-dir "$RUN/state" \
	>"$RUN/agent.log" 2>&1 &
pids+=($!)

ctl() { "$BIN/kube-vppctl" --socket "$RUN/ctl.sock" "$@"; }
if ! ctl status --wait 20s; then
	echo "the agent did not become ready; its log:" >&2
	cat "$RUN/agent.log" >&2
	exit 1
fi

say "kube-vppctl version"
ctl version
say "kube-vppctl show pods (the example pods scheduled on $NODE, plumbed as kubelet's CNI calls would)"
if [ "$(id -u)" -ne 0 ]; then
	echo "  (not root: pods get no network namespaces and interfaces; run make demo as root)"
fi
ctl show pods
say "kube-vppctl vppctl -- show interface"
ctl vppctl -- show interface
say "kube-vppctl vppctl -- show interface address"
ctl vppctl -- show interface address
say "kube-vppctl vppctl -- show ip fib (IPv4 routes kube-vpp added: a host route per pod, pod ranges of the other nodes, blackhole for its own)"
ctl vppctl -- show ip fib
say "kube-vppctl vppctl -- show ip6 fib"
ctl vppctl -- show ip6 fib

say "what the agent logged"
grep -E '"?(created|programmed|added|registered|bound|set admin|pod added|fall back)' "$RUN/agent.log" | sed 's/^/  /' || true
echo
echo "logs: $RUN/agent.log $RUN/vppsim.log"
