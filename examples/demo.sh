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
	--cni-socket "$RUN/cni.sock" --state-dir "$RUN/state" --health-check-addresses 127.0.0.1 \
	--healthz-bind-address 127.0.0.1:10256 >"$RUN/agent.log" 2>&1 &
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

say "kube-vppctl show services (NAT44-ED mappings node-a programmed in place of kube-proxy)"
ctl show services
say "kube-vppctl show events (what the agent refused, as Warning Events)"
ctl show events

trace() {
	echo "\$ kube-vppctl trace $*"
	ctl trace "$@" || true
	echo
}
say "tracing connections through VPP's graph (kube-vppctl trace)"
echo "# a pod asks kube-dns over UDP; every graph node the packet crosses:"
trace --from frontend/web-1 --to 10.96.0.10:53/udp -v
echo "# 40 connections from backend/db-1 to frontend/web spread over its endpoints, on node-a and node-c:"
trace --from backend/db-1 --to 10.96.10.10:80/tcp --count 40
echo "# default/dns-1 through its own service kube-dns (hairpin): its source becomes node-a's 10.244.0.1:"
trace --from default/dns-1 --to 10.96.0.10:53/udp
echo "# backend/api has ClientIP affinity: 40 connections from one client, one backend:"
trace --from frontend/web-1 --to 10.96.20.10:80/tcp --count 40
echo "# an outside client on the LoadBalancer IP (externalTrafficPolicy Cluster: source masqueraded to node-a):"
trace --from 198.51.100.7 --to 203.0.113.10:80/tcp
echo "# a client outside the Service's loadBalancerSourceRanges: dropped on the uplink, before NAT:"
trace --from 192.0.2.99 --to 203.0.113.10:80/tcp
echo "# NodePort with externalTrafficPolicy Local: node-a has api endpoints and the client keeps its address, so"
echo "# backend/default-deny-ingress (no peer allows outside clients) drops it at the api pod's output ACL:"
trace --from 198.51.100.7 --to 192.168.10.11:30080/tcp
echo "# default/empty has no endpoints: rejected at once (ICMP unreachable), not a silent hang:"
trace --from backend/db-1 --to 10.96.0.100:80/tcp
echo "# the externalIP 198.51.100.20 lies outside network.external-ip-cidrs (empty here): not programmed:"
trace --from backend/db-1 --to 198.51.100.20:80/tcp

say "kube-vppctl show policies (NetworkPolicy as VPP ACLs: ingress on the pod interface's output, egress on its input)"
ctl show policies
say "tracing through the policies of examples/policies.yaml"
echo "# frontend-egress and allow-frontend-to-api let web-1 reach api-1 on 8080:"
trace --from frontend/web-1 --to 10.244.0.20:8080/tcp
echo "# ... but not db-1 on 5432 (web-1's egress table on its input denies it):"
trace --from frontend/web-1 --to 10.244.0.30:5432/tcp
echo "# default/dns-1 is not in a team=web namespace: api-1's ingress table on its output denies it:"
trace --from default/dns-1 --to 10.244.0.20:8080/tcp
echo "# every ACL and NAT node on the way, with the policy behind each decision:"
trace --from frontend/web-1 --to 10.96.20.10:80/tcp -v
say "the health check of backend/api-lb-local (healthCheckNodePort 32000), as a load balancer probes it"
curl -s -i http://127.0.0.1:32000/ 2>/dev/null | tr -d '\r' | sed 's/^/  /' || echo "  (curl not installed)"
echo
say "kube-proxy's own health port (10256), as cloud load balancers probe every node"
curl -s -i http://127.0.0.1:10256/healthz 2>/dev/null | tr -d '\r' | sed 's/^/  /' || echo "  (curl not installed)"
echo

say "what the agent logged"
grep -E '"?(created|programmed|added|registered|bound|set admin|pod added|fall back)' "$RUN/agent.log" | sed 's/^/  /' || true
echo
echo "logs: $RUN/agent.log $RUN/vppsim.log"
