package config

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// Keys of every setting, as written in the config file.
const (
	KeyNodeName            = "node.name"
	KeyVPPSocket           = "vpp.socket"
	KeyVPPBackoffInitial   = "vpp.connect-backoff-initial"
	KeyVPPBackoffMax       = "vpp.connect-backoff-max"
	KeyVPPHealthInterval   = "vpp.health-interval"
	KeyVPPReplyTimeout     = "vpp.reply-timeout"
	KeyKubeconfig          = "kubernetes.kubeconfig"
	KeyManifests           = "kubernetes.manifests"
	KeyResyncPeriod        = "kubernetes.resync-period"
	KeyLogLevel            = "log.level"
	KeyLogFormat           = "log.format"
	KeyHTTPListen          = "http.listen"
	KeyCtlSocket           = "ctl.socket"
	KeyUplinkInterface     = "uplink.interface"
	KeyNetworkServiceCIDRs = "network.service-cidrs"

	KeyNetworkExternalIPCIDRs = "network.external-ip-cidrs"

	KeyCNISocket     = "cni.socket"
	KeyCNIStateDir   = "cni.state-dir"
	KeyPodsInterface = "pods.interface"
	KeyPodsMTU       = "pods.mtu"
	KeyPodsMemifDir  = "pods.memif-dir"
	KeyPodsVhostDir  = "pods.vhost-user-dir"

	KeyServicesEnabled              = "services.enabled"
	KeyServicesNodePortAddresses    = "services.node-port-addresses"
	KeyServicesHealthCheckAddresses = "services.health-check-addresses"
	KeyServicesHealthzBindAddress   = "services.healthz-bind-address"

	KeyBGPEnabled                = "bgp.enabled"
	KeyBGPASN                    = "bgp.asn"
	KeyBGPRouterID               = "bgp.router-id"
	KeyBGPListenPort             = "bgp.listen-port"
	KeyBGPNextHopV4              = "bgp.next-hop-v4"
	KeyBGPNextHopV6              = "bgp.next-hop-v6"
	KeyBGPNodeMesh               = "bgp.node-mesh"
	KeyBGPGracefulRestart        = "bgp.graceful-restart.enabled"
	KeyBGPRestartTime            = "bgp.graceful-restart.restart-time"
	KeyBGPAdvertisePodCIDRs      = "bgp.advertise.pod-cidrs"
	KeyBGPAdvertiseServiceCIDRs  = "bgp.advertise.service-cidrs"
	KeyBGPAdvertiseLoadBalancers = "bgp.advertise.load-balancer-ips"
	KeyBGPAdvertiseExternalIPs   = "bgp.advertise.external-ips"
	KeyBGPPeers                  = "bgp.peers"
)

const (
	envPrefix   = "KUBE_VPP"
	configFlag  = "config"
	configEnv   = envPrefix + "_CONFIG"
	programName = "kube-vpp-agent"
)

// option describes one setting: its key, the flag that sets it (if any),
// its default as the user would write it, and a one-line meaning. A list
// holds several values; a boolean flag may be given without a value (--bgp).
type option struct {
	key     string
	flag    string
	def     string
	list    bool
	boolean bool
	help    string
}

// options returns every setting in the order Usage lists them. It is a
// function rather than a variable so that nothing at package level can be
// modified.
func options() []option {
	return []option{
		{key: KeyNodeName, flag: "node", help: "name of this Kubernetes node (required)"},
		{key: KeyVPPSocket, flag: "vpp-socket", def: "/run/vpp/api.sock", help: "VPP binary API socket"},
		{key: KeyVPPBackoffInitial, def: "250ms", help: "first delay between VPP connection attempts"},
		{key: KeyVPPBackoffMax, def: "5s", help: "longest delay between VPP connection attempts"},
		{key: KeyVPPHealthInterval, def: "1s", help: "how often VPP's liveness is probed"},
		{key: KeyVPPReplyTimeout, def: "5s", help: "how long to wait for one VPP API reply"},
		{key: KeyKubeconfig, flag: "kubeconfig", help: "kubeconfig file (neither this nor manifests: in-cluster)"},
		{key: KeyManifests, flag: "manifests", help: "folder of manifests to read instead of an API server"},
		{key: KeyResyncPeriod, def: "10m", help: "informer resync period (0 disables resync)"},
		{key: KeyLogLevel, flag: "log-level", def: "info", help: "debug, info, warn or error"},
		{key: KeyLogFormat, flag: "log-format", def: "console", help: "console or json"},
		{key: KeyHTTPListen, flag: "http-listen", def: ":9911", help: "host:port serving /healthz, /readyz and /metrics"},
		{key: KeyCtlSocket, flag: "ctl-socket", def: "/run/kube-vpp/ctl.sock", help: "socket kube-vppctl talks to"},
		{key: KeyUplinkInterface, flag: "uplink-interface", help: "VPP interface facing the ToR"},
		{key: KeyNetworkServiceCIDRs, flag: "service-cidrs", def: "10.96.0.0/12", list: true, help: "Service ClusterIP ranges, comma-separated"},
		{key: KeyNetworkExternalIPCIDRs, flag: "external-ip-cidrs", list: true, help: "CIDRs inside which Service externalIPs are honoured, comma-separated"},
		{key: KeyCNISocket, flag: "cni-socket", def: "/run/kube-vpp/cni.sock", help: "socket the kube-vpp-cni plugin talks to"},
		{key: KeyCNIStateDir, flag: "state-dir", def: "/var/lib/kube-vpp", help: "folder of the IP allocation state file"},
		{key: KeyPodsInterface, flag: "pod-interface", def: "auto", help: "default pod interface: auto (tap if /dev/vhost-net exists, else veth), tap or veth"},
		{key: KeyPodsMTU, flag: "pod-mtu", def: "1500", help: "MTU of pod interfaces"},
		{key: KeyPodsMemifDir, def: "/run/kube-vpp/memif", help: "host folder of per-pod memif sockets"},
		{key: KeyPodsVhostDir, def: "/run/kube-vpp/vhost-user", help: "host folder of per-pod vhost-user sockets"},
		{key: KeyServicesEnabled, def: "true", help: "run the service proxy (NAT44-ED in place of kube-proxy)"},
		{key: KeyServicesNodePortAddresses, flag: "nodeport-addresses", list: true, help: "CIDRs selecting the node addresses NodePorts answer on (empty: all InternalIP/ExternalIP)"},
		{key: KeyServicesHealthCheckAddresses, flag: "health-check-addresses", list: true, help: "addresses healthCheckNodePort servers bind to (empty: all)"},
		{key: KeyServicesHealthzBindAddress, flag: "healthz-bind-address", def: "0.0.0.0:10256", help: "host:port of kube-proxy's /healthz and /livez, which cloud load balancers probe (empty: off)"},
		{key: KeyBGPEnabled, flag: "bgp", def: "false", boolean: true, help: "run the embedded BGP speaker"},
		{key: KeyBGPASN, flag: "bgp-asn", help: "this node's autonomous system number (required with --bgp)"},
		{key: KeyBGPRouterID, help: "BGP router ID, an IPv4 address (empty: the node's IPv4 InternalIP)"},
		{key: KeyBGPListenPort, def: "179", help: "TCP port BGP listens on (-1: do not listen)"},
		{key: KeyBGPNextHopV4, help: "IPv4 next hop advertised (empty: the node's IPv4 InternalIP)"},
		{key: KeyBGPNextHopV6, help: "IPv6 next hop advertised (empty: the node's IPv6 InternalIP)"},
		{key: KeyBGPNodeMesh, def: "false", help: "peer over iBGP with every other node"},
		{key: KeyBGPGracefulRestart, def: "true", help: "negotiate graceful restart (RFC 4724)"},
		{key: KeyBGPRestartTime, def: "120s", help: "how long peers keep our routes while we restart"},
		{key: KeyBGPAdvertisePodCIDRs, def: "true", help: "advertise the node's pod CIDRs"},
		{key: KeyBGPAdvertiseServiceCIDRs, def: "true", help: "advertise the service CIDRs"},
		{key: KeyBGPAdvertiseLoadBalancers, def: "true", help: "advertise LoadBalancer ingress IPs"},
		{key: KeyBGPAdvertiseExternalIPs, def: "true", help: "advertise Service externalIPs inside network.external-ip-cidrs"},
		{key: KeyBGPPeers, list: true, help: "BGP neighbours: a YAML list in the file, a JSON list in the environment"},
	}
}

// envName returns the environment variable that sets key:
// vpp.socket -> KUBE_VPP_VPP_SOCKET.
func envName(key string) string {
	return envPrefix + "_" + strings.ToUpper(envReplacer().Replace(key))
}

func envReplacer() *strings.Replacer {
	return strings.NewReplacer(".", "_", "-", "_")
}

// Usage returns the help text of the agent's command line: every flag with its
// default and the config key and environment variable it maps to, then the
// settings that only the config file or the environment can set.
func Usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s [flags]\n\n%s\n\nFlags:\n", programName, "Precedence: flag > environment > config file > default.")

	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "  --%s string\t%s\t(env %s)\n", configFlag, "YAML config file to read (optional)", configEnv)
	for _, o := range options() {
		if o.flag == "" {
			continue
		}
		typ := "string"
		switch {
		case o.list:
			typ = "strings"
		case o.boolean:
			typ = "bool"
		}
		fmt.Fprintf(w, "  --%s %s\t%s\t(key %s, env %s, default %s)\n",
			o.flag, typ, o.help, o.key, envName(o.key), showDefault(o))
	}
	fmt.Fprintf(w, "  -h, --help\t%s\n", "show this help and exit")
	_ = w.Flush()

	fmt.Fprintf(&b, "\n%s\n", "Settings without a flag (config file or environment only):")
	w = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, o := range options() {
		if o.flag != "" {
			continue
		}
		fmt.Fprintf(w, "  %s\t%s\t(env %s, default %s)\n", o.key, o.help, envName(o.key), showDefault(o))
	}
	_ = w.Flush()
	return b.String()
}

func showDefault(o option) string {
	switch {
	case o.def == "" && o.list:
		return "none"
	case o.def == "":
		return `""`
	}
	return o.def
}
