package config

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestLoadServicesDefaults(t *testing.T) {
	cfg, err := Load([]string{"--node", "n1"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	// The proxy runs; NodePorts on every node address, health checks on
	// every address, the proxy's own /healthz on 0.0.0.0:10256
	// (kube-proxy's defaults); no external IP honoured.
	if want := (Services{Enabled: true, HealthzBindAddress: "0.0.0.0:10256"}); !reflect.DeepEqual(cfg.Services, want) {
		t.Errorf("Services = %+v, want %+v", cfg.Services, want)
	}
	if cfg.Network.ExternalIPCIDRs != nil {
		t.Errorf("ExternalIPCIDRs = %v, want none", cfg.Network.ExternalIPCIDRs)
	}
}

func TestLoadServices(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	addr := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	const healthz = "0.0.0.0:10256" // the default
	tests := []struct {
		name     string
		file     string
		env      map[string]string
		args     []string
		services Services
		external []netip.Prefix
	}{
		{
			name:     "nodeport addresses flag",
			args:     []string{"--nodeport-addresses", "192.168.1.0/24, 10.0.0.0/8"},
			services: Services{Enabled: true, NodePortAddresses: pfx("192.168.1.0/24", "10.0.0.0/8"), HealthzBindAddress: healthz},
		},
		{
			name:     "health check addresses flag, repeated",
			args:     []string{"--health-check-addresses", "192.168.1.10", "--health-check-addresses", "fd00::10"},
			services: Services{Enabled: true, HealthCheckAddresses: addr("192.168.1.10", "fd00::10"), HealthzBindAddress: healthz},
		},
		{
			name:     "external IP CIDRs flag",
			args:     []string{"--external-ip-cidrs", "203.0.113.0/24,2001:db8:e::/64"},
			services: Services{Enabled: true, HealthzBindAddress: healthz},
			external: pfx("203.0.113.0/24", "2001:db8:e::/64"),
		},
		{
			name:     "disabled from the environment",
			env:      map[string]string{"KUBE_VPP_SERVICES_ENABLED": "false"},
			services: Services{HealthzBindAddress: healthz},
		},
		{
			name: "lists from the environment",
			env: map[string]string{
				"KUBE_VPP_SERVICES_NODE_PORT_ADDRESSES":    "192.168.1.0/24",
				"KUBE_VPP_SERVICES_HEALTH_CHECK_ADDRESSES": "192.168.1.10",
				"KUBE_VPP_NETWORK_EXTERNAL_IP_CIDRS":       "203.0.113.0/24",
			},
			services: Services{Enabled: true, NodePortAddresses: pfx("192.168.1.0/24"), HealthCheckAddresses: addr("192.168.1.10"), HealthzBindAddress: healthz},
			external: pfx("203.0.113.0/24"),
		},
		{
			name: "file",
			file: "services:\n  enabled: false\n  node-port-addresses: [192.168.1.0/24]\n  health-check-addresses: [192.168.1.10]\n" +
				"network:\n  external-ip-cidrs: [203.0.113.0/24]\n",
			services: Services{NodePortAddresses: pfx("192.168.1.0/24"), HealthCheckAddresses: addr("192.168.1.10"), HealthzBindAddress: healthz},
			external: pfx("203.0.113.0/24"),
		},
		{
			name:     "flag over environment over file",
			file:     "services:\n  node-port-addresses: [10.0.0.0/8]\n",
			env:      map[string]string{"KUBE_VPP_SERVICES_NODE_PORT_ADDRESSES": "172.16.0.0/12"},
			args:     []string{"--nodeport-addresses", "192.168.1.0/24"},
			services: Services{Enabled: true, NodePortAddresses: pfx("192.168.1.0/24"), HealthzBindAddress: healthz},
		},
		{
			name:     "healthz bind address flag",
			args:     []string{"--healthz-bind-address", "127.0.0.1:10256"},
			services: Services{Enabled: true, HealthzBindAddress: "127.0.0.1:10256"},
		},
		{
			name:     "healthz off",
			args:     []string{"--healthz-bind-address="},
			services: Services{Enabled: true},
		},
		{
			name:     "healthz from the file",
			file:     "services:\n  healthz-bind-address: \"[::1]:10256\"\n",
			services: Services{Enabled: true, HealthzBindAddress: "[::1]:10256"},
		},
		{
			name:     "environment over file",
			file:     "services:\n  enabled: false\n  node-port-addresses: [10.0.0.0/8]\n",
			env:      map[string]string{"KUBE_VPP_SERVICES_NODE_PORT_ADDRESSES": "172.16.0.0/12", "KUBE_VPP_SERVICES_ENABLED": "true"},
			services: Services{Enabled: true, NodePortAddresses: pfx("172.16.0.0/12"), HealthzBindAddress: healthz},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setenv(t, tt.env)
			args := append([]string{"--node=n1"}, tt.args...)
			if tt.file != "" {
				args = append(args, "--config", writeConfig(t, tt.file))
			}
			cfg, err := Load(args)
			if err != nil {
				t.Fatalf("Load(%q): %v", args, err)
			}
			if !reflect.DeepEqual(cfg.Services, tt.services) {
				t.Errorf("Services = %+v, want %+v", cfg.Services, tt.services)
			}
			if !reflect.DeepEqual(cfg.Network.ExternalIPCIDRs, tt.external) {
				t.Errorf("ExternalIPCIDRs = %v, want %v", cfg.Network.ExternalIPCIDRs, tt.external)
			}
		})
	}
}

func TestLoadServicesInvalid(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		env       map[string]string
		args      []string
		key       string
		value     string
		reasonHas string
	}{
		{name: "nodeport address not a CIDR", args: []string{"--nodeport-addresses", "192.168.1.10"},
			key: KeyServicesNodePortAddresses, value: "192.168.1.10", reasonHas: "not a CIDR"},
		{name: "nodeport CIDR with host bits", args: []string{"--nodeport-addresses", "192.168.1.10/24"},
			key: KeyServicesNodePortAddresses, value: "192.168.1.10/24", reasonHas: "did you mean 192.168.1.0/24?"},
		{name: "nodeport CIDR twice", env: map[string]string{"KUBE_VPP_SERVICES_NODE_PORT_ADDRESSES": "10.0.0.0/8,10.0.0.0/8"},
			key: KeyServicesNodePortAddresses, value: "10.0.0.0/8", reasonHas: "twice"},
		{name: "nodeport CIDR in the file a name", file: "services:\n  node-port-addresses: [eth0]\n",
			key: KeyServicesNodePortAddresses, value: "eth0", reasonHas: "not a CIDR"},
		{name: "health check address a name", args: []string{"--health-check-addresses", "node-1"},
			key: KeyServicesHealthCheckAddresses, value: "node-1", reasonHas: "not an IP address"},
		{name: "health check address a CIDR", env: map[string]string{"KUBE_VPP_SERVICES_HEALTH_CHECK_ADDRESSES": "192.168.1.0/24"},
			key: KeyServicesHealthCheckAddresses, value: "192.168.1.0/24", reasonHas: "not an IP address"},
		// Each address is bound once per port: the second bind would fail
		// and take every health check port down with it.
		{name: "health check address twice", args: []string{"--health-check-addresses", "192.168.1.10,192.168.1.10"},
			key: KeyServicesHealthCheckAddresses, value: "192.168.1.10", reasonHas: "twice"},
		{name: "external IP CIDR flag not a CIDR", args: []string{"--external-ip-cidrs", "203.0.113.5"},
			key: KeyNetworkExternalIPCIDRs, value: "203.0.113.5", reasonHas: "not a CIDR"},
		{name: "external IP CIDR flag with host bits", args: []string{"--external-ip-cidrs", "203.0.113.5/24"},
			key: KeyNetworkExternalIPCIDRs, value: "203.0.113.5/24", reasonHas: "did you mean 203.0.113.0/24?"},
		{name: "healthz bind address without a port", args: []string{"--healthz-bind-address", "0.0.0.0"},
			key: KeyServicesHealthzBindAddress, value: "0.0.0.0", reasonHas: "host:port"},
		{name: "healthz bind address a name", env: map[string]string{"KUBE_VPP_SERVICES_HEALTHZ_BIND_ADDRESS": "node-1:10256"},
			key: KeyServicesHealthzBindAddress, value: "node-1:10256", reasonHas: "not an IP address"},
		{name: "enabled not a boolean", env: map[string]string{"KUBE_VPP_SERVICES_ENABLED": "off-ish"},
			key: KeyServicesEnabled, value: "off-ish", reasonHas: "true or false"},
		{name: "enabled a list in the file", file: "services:\n  enabled: [true]\n",
			key: KeyServicesEnabled, value: "[true]", reasonHas: "single value"},
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
