package config

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kube-vpp/kube-vpp/bgp"
)

func TestLoadBGPFile(t *testing.T) {
	const file = `
node:
  name: worker-1
network:
  external-ip-cidrs: [203.0.113.0/24, "2001:db8:e::/64"]
bgp:
  enabled: true
  asn: 4200000001
  router-id: 192.0.2.10
  listen-port: -1
  next-hop-v4: 192.0.2.10
  next-hop-v6: "2001:db8::10"
  node-mesh: true
  graceful-restart:
    enabled: false
    restart-time: 300s
  advertise:
    pod-cidrs: false
    service-cidrs: true
    load-balancer-ips: false
    external-ips: true
  peers:
    - address: 192.0.2.1
      asn: 65001
      port: 1179
      password: s3cret
      ebgp-multihop: 2
      hold-time: 9s
      keepalive: 2s
      graceful-restart: false
      passive: true
      description: tor-a
    - address: "2001:db8::1"
      asn: 4294967295
      ttl-security: true
      hold-time: 10s
`
	cfg, err := Load([]string{"--config", writeConfig(t, file)})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := BGP{
		Enabled:         true,
		ASN:             4200000001,
		RouterID:        netip.MustParseAddr("192.0.2.10"),
		ListenPort:      -1,
		NextHopV4:       netip.MustParseAddr("192.0.2.10"),
		NextHopV6:       netip.MustParseAddr("2001:db8::10"),
		NodeMesh:        true,
		GracefulRestart: bgp.GracefulRestart{Enabled: false, RestartTime: 300 * time.Second},
		Advertise:       Advertise{ServiceCIDRs: true, ExternalIPs: true},
		Peers: []bgp.Peer{
			{
				Address: netip.MustParseAddr("192.0.2.1"), ASN: 65001, Port: 1179, Password: "s3cret",
				EBGPMultihopTTL: 2, HoldTime: 9 * time.Second, Keepalive: 2 * time.Second,
				Passive: true, Description: "tor-a",
			},
			{
				// Defaults: port 179, graceful restart on, and a keepalive a
				// third of the hold time in whole seconds (RFC 4271 §4.4).
				Address: netip.MustParseAddr("2001:db8::1"), ASN: 4294967295, Port: 179,
				TTLSecurity: true, HoldTime: 10 * time.Second, Keepalive: 3 * time.Second,
				GracefulRestart: true,
			},
		},
	}
	if !reflect.DeepEqual(cfg.BGP, want) {
		t.Errorf("BGP:\n got %+v\nwant %+v", cfg.BGP, want)
	}
	wantExt := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:e::/64")}
	if !reflect.DeepEqual(cfg.Network.ExternalIPCIDRs, wantExt) {
		t.Errorf("ExternalIPCIDRs = %v, want %v", cfg.Network.ExternalIPCIDRs, wantExt)
	}
}

func TestLoadBGPSources(t *testing.T) {
	const file = `
bgp:
  asn: 65000
  peers:
    - {address: 192.0.2.1, asn: 65001}
`
	tests := []struct {
		name string
		file bool
		env  map[string]string
		args []string
		want func(*Config) any
		exp  any
	}{
		{
			name: "flags enable BGP with an ASN",
			args: []string{"--bgp", "--bgp-asn", "64512"},
			want: func(c *Config) any { return [2]any{c.BGP.Enabled, c.BGP.ASN} },
			exp:  [2]any{true, uint32(64512)},
		},
		{
			name: "flag false over env true",
			env:  map[string]string{"KUBE_VPP_BGP_ENABLED": "true"},
			args: []string{"--bgp=false"},
			want: func(c *Config) any { return c.BGP.Enabled },
			exp:  false,
		},
		{
			name: "env enables, file gives the ASN",
			file: true,
			env:  map[string]string{"KUBE_VPP_BGP_ENABLED": "TRUE"},
			want: func(c *Config) any { return [2]any{c.BGP.Enabled, c.BGP.ASN} },
			exp:  [2]any{true, uint32(65000)},
		},
		{
			name: "nested key from env",
			env:  map[string]string{"KUBE_VPP_BGP_GRACEFUL_RESTART_RESTART_TIME": "4095s", "KUBE_VPP_BGP_ADVERTISE_POD_CIDRS": "false"},
			want: func(c *Config) any { return [2]any{c.BGP.GracefulRestart.RestartTime, c.BGP.Advertise.PodCIDRs} },
			exp:  [2]any{4095 * time.Second, false},
		},
		{
			name: "JSON peers from env over the file's",
			file: true,
			env:  map[string]string{"KUBE_VPP_BGP_PEERS": `[{"address":"fd00::1","asn":65002,"hold-time":"9s"}]`},
			want: func(c *Config) any { return c.BGP.Peers },
			// The keepalive defaults to a third of the hold time (RFC 4271 §10).
			exp: []bgp.Peer{{Address: netip.MustParseAddr("fd00::1"), ASN: 65002, Port: 179, GracefulRestart: true,
				HoldTime: 9 * time.Second, Keepalive: 3 * time.Second}},
		},
		{
			name: "JSON keys in any case",
			env:  map[string]string{"KUBE_VPP_BGP_PEERS": `[{"Address":"192.0.2.7","ASN":"65007"}]`},
			want: func(c *Config) any { return c.BGP.Peers },
			exp: []bgp.Peer{{Address: netip.MustParseAddr("192.0.2.7"), ASN: 65007, Port: 179,
				HoldTime: 90 * time.Second, Keepalive: 30 * time.Second, GracefulRestart: true}},
		},
		{
			name: "empty peer list in env",
			file: true,
			env:  map[string]string{"KUBE_VPP_BGP_PEERS": `[]`},
			want: func(c *Config) any { return c.BGP.Peers },
			exp:  []bgp.Peer(nil),
		},
		{
			name: "external IP CIDRs from env",
			env:  map[string]string{"KUBE_VPP_NETWORK_EXTERNAL_IP_CIDRS": "198.51.100.0/24, 2001:db8::/48"},
			want: func(c *Config) any { return c.Network.ExternalIPCIDRs },
			exp:  []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::/48")},
		},
		{
			name: "listen port 0",
			env:  map[string]string{"KUBE_VPP_BGP_LISTEN_PORT": "0"},
			want: func(c *Config) any { return c.BGP.ListenPort },
			exp:  int32(0),
		},
		{
			name: "disabled BGP needs no ASN",
			env:  map[string]string{"KUBE_VPP_BGP_NODE_MESH": "true"},
			want: func(c *Config) any { return [2]any{c.BGP.Enabled, c.BGP.ASN} },
			exp:  [2]any{false, uint32(0)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setenv(t, tt.env)
			args := append([]string{"--node=n1"}, tt.args...)
			if tt.file {
				args = append(args, "--config", writeConfig(t, file))
			}
			cfg, err := Load(args)
			if err != nil {
				t.Fatalf("Load(%q): %v", args, err)
			}
			if got := tt.want(cfg); !reflect.DeepEqual(got, tt.exp) {
				t.Errorf("got %+v, want %+v", got, tt.exp)
			}
		})
	}
}

func TestLoadBGPInvalid(t *testing.T) {
	// peers wraps YAML list items into a file.
	peers := func(items string) string { return "bgp:\n  peers:\n" + items }
	tests := []struct {
		name      string
		file      string
		env       map[string]string
		args      []string
		key       string
		value     string
		reasonHas string
	}{
		{name: "enabled without ASN", args: []string{"--bgp"}, key: "bgp.asn", reasonHas: "required when bgp.enabled"},
		{name: "enabled from env without ASN", env: map[string]string{"KUBE_VPP_BGP_ENABLED": "true"}, key: "bgp.asn", reasonHas: "--bgp-asn"},
		{name: "ASN 0", args: []string{"--bgp", "--bgp-asn", "0"}, key: "bgp.asn", value: "0", reasonHas: "1 to 4294967295"},
		{name: "ASN above 32 bits", file: "bgp:\n  asn: 4294967296\n", key: "bgp.asn", value: "4294967296", reasonHas: "1 to 4294967295"},
		{name: "negative ASN", env: map[string]string{"KUBE_VPP_BGP_ASN": "-1"}, key: "bgp.asn", value: "-1", reasonHas: "AS number"},
		{name: "enabled not a boolean", env: map[string]string{"KUBE_VPP_BGP_ENABLED": "yes please"}, key: "bgp.enabled", value: "yes please", reasonHas: "true or false"},
		{name: "router ID IPv6", file: "bgp:\n  router-id: \"fd00::1\"\n", key: "bgp.router-id", value: "fd00::1", reasonHas: "not an IPv4 address"},
		{name: "router ID zero", file: "bgp:\n  router-id: 0.0.0.0\n", key: "bgp.router-id", value: "0.0.0.0", reasonHas: "0.0.0.0"},
		{name: "router ID not an address", env: map[string]string{"KUBE_VPP_BGP_ROUTER_ID": "node-1"}, key: "bgp.router-id", value: "node-1", reasonHas: "IPv4"},
		{name: "listen port too high", file: "bgp:\n  listen-port: 65536\n", key: "bgp.listen-port", value: "65536", reasonHas: "0 to 65535"},
		{name: "listen port below -1", env: map[string]string{"KUBE_VPP_BGP_LISTEN_PORT": "-2"}, key: "bgp.listen-port", value: "-2", reasonHas: "-1"},
		{name: "listen port named", env: map[string]string{"KUBE_VPP_BGP_LISTEN_PORT": "bgp"}, key: "bgp.listen-port", value: "bgp", reasonHas: "0 to 65535"},
		{name: "IPv4 next hop given IPv6", file: "bgp:\n  next-hop-v4: \"2001:db8::1\"\n", key: "bgp.next-hop-v4", value: "2001:db8::1", reasonHas: "not an IPv4 address"},
		{name: "IPv6 next hop given IPv4", env: map[string]string{"KUBE_VPP_BGP_NEXT_HOP_V6": "192.0.2.1"}, key: "bgp.next-hop-v6", value: "192.0.2.1", reasonHas: "not an IPv6 address"},
		{name: "next hop unspecified", env: map[string]string{"KUBE_VPP_BGP_NEXT_HOP_V4": "0.0.0.0"}, key: "bgp.next-hop-v4", value: "0.0.0.0", reasonHas: "unicast"},
		{name: "next hop multicast", env: map[string]string{"KUBE_VPP_BGP_NEXT_HOP_V6": "ff02::1"}, key: "bgp.next-hop-v6", value: "ff02::1", reasonHas: "unicast"},
		{name: "next hop with zone", env: map[string]string{"KUBE_VPP_BGP_NEXT_HOP_V6": "fe80::1%eth0"}, key: "bgp.next-hop-v6", value: "fe80::1%eth0", reasonHas: "zone"},
		{name: "node mesh not a boolean", env: map[string]string{"KUBE_VPP_BGP_NODE_MESH": "full"}, key: "bgp.node-mesh", value: "full", reasonHas: "true or false"},
		{name: "graceful restart not a boolean", file: "bgp:\n  graceful-restart:\n    enabled: sometimes\n", key: "bgp.graceful-restart.enabled", value: "sometimes", reasonHas: "true or false"},
		{name: "restart time 0", file: "bgp:\n  graceful-restart:\n    restart-time: 0s\n", key: "bgp.graceful-restart.restart-time", value: "0s", reasonHas: "1s to 4095s"},
		{name: "restart time beyond 12 bits", env: map[string]string{"KUBE_VPP_BGP_GRACEFUL_RESTART_RESTART_TIME": "4096s"}, key: "bgp.graceful-restart.restart-time", value: "4096s", reasonHas: "4095s"},
		{name: "restart time fraction", env: map[string]string{"KUBE_VPP_BGP_GRACEFUL_RESTART_RESTART_TIME": "1500ms"}, key: "bgp.graceful-restart.restart-time", value: "1500ms", reasonHas: "whole seconds"},
		{name: "restart time without unit", file: "bgp:\n  graceful-restart:\n    restart-time: 120\n", key: "bgp.graceful-restart.restart-time", value: "120", reasonHas: "unit"},
		{name: "advertise not a boolean", file: "bgp:\n  advertise:\n    external-ips: maybe\n", key: "bgp.advertise.external-ips", value: "maybe", reasonHas: "true or false"},
		{name: "external IP CIDR not canonical", file: "network:\n  external-ip-cidrs: [203.0.113.7/24]\n", key: "network.external-ip-cidrs", value: "203.0.113.7/24", reasonHas: "did you mean 203.0.113.0/24?"},
		{name: "external IP CIDR twice", env: map[string]string{"KUBE_VPP_NETWORK_EXTERNAL_IP_CIDRS": "203.0.113.0/24,203.0.113.0/24"}, key: "network.external-ip-cidrs", value: "203.0.113.0/24", reasonHas: "twice"},
		{name: "external IP CIDR not a CIDR", env: map[string]string{"KUBE_VPP_NETWORK_EXTERNAL_IP_CIDRS": "203.0.113.7"}, key: "network.external-ip-cidrs", value: "203.0.113.7", reasonHas: "not a CIDR"},

		{name: "peer without address", file: peers("    - asn: 65001\n"), key: "bgp.peers[0].address", reasonHas: "required"},
		{name: "second peer without ASN", file: peers("    - {address: 192.0.2.1, asn: 65001}\n    - {address: 192.0.2.2}\n"), key: "bgp.peers[1].asn", reasonHas: "required"},
		{name: "peer ASN 0", file: peers("    - {address: 192.0.2.1, asn: 0}\n"), key: "bgp.peers[0].asn", value: "0", reasonHas: "1 to 4294967295"},
		{name: "peer ASN too big", file: peers("    - {address: 192.0.2.1, asn: 4294967296}\n"), key: "bgp.peers[0].asn", value: "4294967296", reasonHas: "1 to 4294967295"},
		{name: "peer address a name", file: peers("    - {address: tor-a, asn: 65001}\n"), key: "bgp.peers[0].address", value: "tor-a", reasonHas: "not an IP address"},
		{name: "peer address IPv4-mapped", file: peers("    - {address: \"::ffff:192.0.2.1\", asn: 65001}\n"), key: "bgp.peers[0].address", value: "::ffff:192.0.2.1", reasonHas: "dotted form (192.0.2.1)"},
		{name: "peer address multicast", file: peers("    - {address: 224.0.0.5, asn: 65001}\n"), key: "bgp.peers[0].address", value: "224.0.0.5", reasonHas: "unicast"},
		{name: "peer port 0", file: peers("    - {address: 192.0.2.1, asn: 65001, port: 0}\n"), key: "bgp.peers[0].port", value: "0", reasonHas: "1 to 65535"},
		{name: "peer port too high", file: peers("    - {address: 192.0.2.1, asn: 65001, port: 65536}\n"), key: "bgp.peers[0].port", value: "65536", reasonHas: "1 to 65535"},
		{name: "peer password too long", file: peers("    - {address: 192.0.2.1, asn: 65001, password: " + strings.Repeat("p", 81) + "}\n"), key: "bgp.peers[0].password", value: notShown, reasonHas: "80 bytes"},
		{name: "peer multihop TTL too high", file: peers("    - {address: 192.0.2.1, asn: 65001, ebgp-multihop: 256}\n"), key: "bgp.peers[0].ebgp-multihop", value: "256", reasonHas: "1 to 255"},
		{name: "peer multihop negative", file: peers("    - {address: 192.0.2.1, asn: 65001, ebgp-multihop: -1}\n"), key: "bgp.peers[0].ebgp-multihop", value: "-1", reasonHas: "1 to 255"},
		{name: "peer TTL security with multihop", file: peers("    - {address: 192.0.2.1, asn: 65001, ebgp-multihop: 2, ttl-security: true}\n"), key: "bgp.peers[0].ttl-security", value: "true", reasonHas: "ebgp-multihop"},
		{name: "peer hold time below 3s", file: peers("    - {address: 192.0.2.1, asn: 65001, hold-time: 2s}\n"), key: "bgp.peers[0].hold-time", value: "2s", reasonHas: "3s to 65535s"},
		{name: "peer hold time above 16 bits", file: peers("    - {address: 192.0.2.1, asn: 65001, hold-time: 65536s}\n"), key: "bgp.peers[0].hold-time", value: "65536s", reasonHas: "3s to 65535s"},
		{name: "peer hold time fraction", file: peers("    - {address: 192.0.2.1, asn: 65001, hold-time: 4500ms}\n"), key: "bgp.peers[0].hold-time", value: "4500ms", reasonHas: "whole seconds"},
		{name: "peer hold time without unit", file: peers("    - {address: 192.0.2.1, asn: 65001, hold-time: 90}\n"), key: "bgp.peers[0].hold-time", value: "90", reasonHas: "unit"},
		{name: "peer keepalive equal to hold time", file: peers("    - {address: 192.0.2.1, asn: 65001, hold-time: 9s, keepalive: 9s}\n"), key: "bgp.peers[0].keepalive", value: "9s", reasonHas: "less than hold-time (9s)"},
		{name: "peer keepalive above default hold time", file: peers("    - {address: 192.0.2.1, asn: 65001, keepalive: 100s}\n"), key: "bgp.peers[0].keepalive", value: "100s", reasonHas: "less than hold-time (1m30s)"},
		{name: "peer keepalive 0 with a hold time", file: peers("    - {address: 192.0.2.1, asn: 65001, keepalive: 0s}\n"), key: "bgp.peers[0].keepalive", value: "0s", reasonHas: "at least 1s"},
		{name: "peer hold time 0", file: peers("    - {address: 192.0.2.1, asn: 65001, hold-time: 0s}\n"), key: "bgp.peers[0].hold-time", value: "0s", reasonHas: "0, no keepalives, is not supported"},
		{name: "peer graceful restart not a boolean", file: peers("    - {address: 192.0.2.1, asn: 65001, graceful-restart: often}\n"), key: "bgp.peers[0].graceful-restart", value: "often", reasonHas: "true or false"},
		{name: "peer passive not a boolean", file: peers("    - {address: 192.0.2.1, asn: 65001, passive: 2}\n"), key: "bgp.peers[0].passive", value: "2", reasonHas: "true or false"},
		{name: "peer unknown key", file: peers("    - {address: 192.0.2.1, asn: 65001, holdtime: 9s}\n"), key: "bgp.peers[0].holdtime", value: notShown, reasonHas: "did you mean hold-time?"},
		{name: "peer field a list", file: peers("    - {address: 192.0.2.1, asn: 65001, description: [a, b]}\n"), key: "bgp.peers[0].description", value: "[a b]", reasonHas: "single value"},
		{name: "peer not a mapping", file: peers("    - 192.0.2.1\n"), key: "bgp.peers[0]", value: "192.0.2.1", reasonHas: "mapping"},
		{name: "duplicate peer address", file: peers("    - {address: \"2001:db8::1\", asn: 65001}\n    - {address: 192.0.2.1, asn: 65001}\n    - {address: \"2001:db8:0::1\", asn: 65002}\n"), key: "bgp.peers[2].address", value: "2001:db8::1", reasonHas: "same address as bgp.peers[0]"},
		{name: "peers a scalar in the file", file: "bgp:\n  peers: 192.0.2.1\n", key: "bgp.peers", value: notShown, reasonHas: "JSON list"},

		{name: "env peers not JSON", env: map[string]string{"KUBE_VPP_BGP_PEERS": "192.0.2.1:65001"}, key: "bgp.peers", value: notShown, reasonHas: "not a JSON list"},
		{name: "env peers an object", env: map[string]string{"KUBE_VPP_BGP_PEERS": `{"address":"192.0.2.1","asn":65001}`}, key: "bgp.peers", value: notShown, reasonHas: "not a JSON list"},
		{name: "env peers trailing data", env: map[string]string{"KUBE_VPP_BGP_PEERS": `[{"address":"192.0.2.1","asn":65001}] []`}, key: "bgp.peers", value: notShown, reasonHas: "after the list"},
		{name: "env peer bad ASN", env: map[string]string{"KUBE_VPP_BGP_PEERS": `[{"address":"192.0.2.1","asn":65001},{"address":"192.0.2.2","asn":0}]`}, key: "bgp.peers[1].asn", value: "0", reasonHas: "1 to 4294967295"},
		{name: "env peer fractional ASN", env: map[string]string{"KUBE_VPP_BGP_PEERS": `[{"address":"192.0.2.1","asn":65001.5}]`}, key: "bgp.peers[0].asn", value: "65001.5", reasonHas: "AS number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setenv(t, tt.env)
			args := append([]string{"--node=n1"}, tt.args...)
			if tt.file != "" {
				args = append(args, "--config", writeConfig(t, tt.file))
			}
			wantInvalid(t, args, tt.key, tt.value, tt.reasonHas)
		})
	}
}

func TestLoadBGPPasswordNotInErrors(t *testing.T) {
	const secret = "hunter2-s3cret"
	tests := map[string]map[string]string{
		"bad JSON":     {"KUBE_VPP_BGP_PEERS": `[{"address":"192.0.2.1","asn":65001,"password":"` + secret + `"`},
		"misspelt key": {"KUBE_VPP_BGP_PEERS": `[{"address":"192.0.2.1","asn":65001,"pasword":"` + secret + `"}]`},
		"too long":     {"KUBE_VPP_BGP_PEERS": `[{"address":"192.0.2.1","asn":65001,"password":"` + strings.Repeat(secret, 8) + `"}]`},
	}
	for name, env := range tests {
		t.Run(name, func(t *testing.T) {
			setenv(t, env)
			_, err := Load([]string{"--node=n1"})
			if err == nil {
				t.Fatal("want an error")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestLoadBGPFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantHas string
	}{
		{"nested section given a scalar", "bgp:\n  graceful-restart: true\n", `"bgp.graceful-restart" must be a mapping`},
		{"misspelt nested key", "bgp:\n  advertise:\n    pod-cidr: true\n", "did you mean bgp.advertise.pod-cidrs?"},
		{"peers a mapping", "bgp:\n  peers:\n    address: 192.0.2.1\n", `unknown key "bgp.peers.address"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load([]string{"--node", "n1", "--config", writeConfig(t, tt.yaml)})
			var fe *FileError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.wantHas) {
				t.Fatalf("got %v, want a *FileError containing %q", err, tt.wantHas)
			}
		})
	}
}

func TestUsageMentionsBGPSettings(t *testing.T) {
	u := Usage()
	for _, s := range []string{
		"--bgp bool", "bgp.enabled", "KUBE_VPP_BGP_ENABLED",
		"--bgp-asn string", "bgp.asn", "KUBE_VPP_BGP_ASN",
		"bgp.router-id", "KUBE_VPP_BGP_ROUTER_ID",
		"bgp.listen-port", "KUBE_VPP_BGP_LISTEN_PORT",
		"bgp.next-hop-v4", "KUBE_VPP_BGP_NEXT_HOP_V4", "bgp.next-hop-v6", "KUBE_VPP_BGP_NEXT_HOP_V6",
		"bgp.node-mesh", "KUBE_VPP_BGP_NODE_MESH",
		"bgp.graceful-restart.enabled", "KUBE_VPP_BGP_GRACEFUL_RESTART_ENABLED",
		"bgp.graceful-restart.restart-time", "KUBE_VPP_BGP_GRACEFUL_RESTART_RESTART_TIME", "120s",
		"bgp.advertise.pod-cidrs", "bgp.advertise.service-cidrs", "bgp.advertise.load-balancer-ips", "bgp.advertise.external-ips",
		"KUBE_VPP_BGP_ADVERTISE_LOAD_BALANCER_IPS",
		"bgp.peers", "KUBE_VPP_BGP_PEERS",
		"network.external-ip-cidrs", "KUBE_VPP_NETWORK_EXTERNAL_IP_CIDRS",
	} {
		if !strings.Contains(u, s) {
			t.Errorf("Usage does not mention %q:\n%s", s, u)
		}
	}
}
