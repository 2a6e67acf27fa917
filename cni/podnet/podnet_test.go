package podnet

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestConfigValidation(t *testing.T) {
	// Validation runs before the namespace is opened, so a path that does not
	// exist proves nothing was touched: a late check would fail on the path.
	const ns = "/nonexistent/kvpn-validation"
	v4, v6 := netip.MustParseAddr("10.244.0.5"), netip.MustParseAddr("fd00:10:244::5")
	gw4, gw6 := netip.MustParseAddr("10.244.0.1"), netip.MustParseAddr("fd00:10:244::1")
	good := Config{Netns: ns, IfName: "eth0", Addresses: []netip.Addr{v4}, Gateways: []netip.Addr{gw4}}
	with := func(edit func(*Config)) Config {
		c := good
		edit(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error
	}{
		{"empty netns", with(func(c *Config) { c.Netns = "" }), `pod interface "eth0": Netns is empty`},
		{"empty ifname", with(func(c *Config) { c.IfName = "" }), `pod interface "" in /nonexistent/kvpn-validation: IfName: empty`},
		{"ifname 16 bytes", with(func(c *Config) { c.IfName = "eth0123456789abc" }), `IfName: "eth0123456789abc" is longer than 15 bytes`},
		{"ifname with slash", with(func(c *Config) { c.IfName = "eth/0" }), `IfName: "eth/0" contains`},
		{"ifname with space", with(func(c *Config) { c.IfName = "eth 0" }), `IfName: "eth 0" contains`},
		{"ifname dot", with(func(c *Config) { c.IfName = "." }), `IfName: "." is not a valid name`},
		{"no addresses", with(func(c *Config) { c.Addresses = nil }), "Addresses is empty"},
		{"two IPv4 addresses", with(func(c *Config) { c.Addresses = []netip.Addr{v4, netip.MustParseAddr("10.244.0.6")} }),
			"Addresses: 10.244.0.5 and 10.244.0.6: more than one IPv4 address"},
		{"zero address", with(func(c *Config) { c.Addresses = []netip.Addr{{}} }), "Addresses: invalid (zero) address"},
		{"unspecified address", with(func(c *Config) { c.Addresses = []netip.Addr{netip.IPv4Unspecified()} }), "Addresses: 0.0.0.0: not a unicast address"},
		{"mapped address", with(func(c *Config) { c.Addresses = []netip.Addr{netip.MustParseAddr("::ffff:10.244.0.5")} }), "IPv4-mapped"},
		{"zoned address", with(func(c *Config) { c.Addresses = []netip.Addr{netip.MustParseAddr("fe80::5%eth0")} }), "zoned address"},
		{"no gateway", with(func(c *Config) { c.Gateways = nil }), "Gateways: no IPv4 gateway for address 10.244.0.5"},
		{"gateway of other family", with(func(c *Config) { c.Gateways = []netip.Addr{gw6} }), "Gateways: no IPv4 gateway for address 10.244.0.5"},
		{"extra gateway family", with(func(c *Config) { c.Gateways = []netip.Addr{gw4, gw6} }), "Gateways: IPv6 gateway fd00:10:244::1 has no IPv6 address"},
		{"gateway is own address", with(func(c *Config) { c.Gateways = []netip.Addr{v4} }), "Gateways: gateway 10.244.0.5 is the pod's own address"},
		{"MTU too small", with(func(c *Config) { c.MTU = 67 }), "MTU 67 outside 68..65535"},
		{"MTU too large", with(func(c *Config) { c.MTU = 65536 }), "MTU 65536 outside 68..65535"},
		{"MTU negative", with(func(c *Config) { c.MTU = -1 }), "MTU -1 outside 68..65535"},
		{"MTU below IPv6 minimum", with(func(c *Config) {
			c.Addresses = []netip.Addr{v4, v6}
			c.Gateways = []netip.Addr{gw4, gw6}
			c.MTU = 1279
		}), "MTU 1279 is below IPv6's minimum 1280"},
		{"GatewayMAC short", with(func(c *Config) { c.GatewayMAC = net.HardwareAddr{2, 0, 0, 1} }), "GatewayMAC: 02:00:00:01: want a 6-byte Ethernet address"},
		{"GatewayMAC multicast", with(func(c *Config) { c.GatewayMAC = net.HardwareAddr{1, 0, 0x5e, 0, 0, 1} }), "GatewayMAC: 01:00:5e:00:00:01: multicast address"},
		{"GatewayMAC zero", with(func(c *Config) { c.GatewayMAC = make(net.HardwareAddr, 6) }), "all-zero address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Configure(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Configure: error %v, want one containing %q", err, tc.want)
			}
			if err := Check(context.Background(), tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestValidConfigsPassValidation(t *testing.T) {
	gw6LinkLocal := netip.MustParseAddr("fe80::1")
	tests := []struct {
		name string
		cfg  Config
	}{
		{"IPv4 only, MTU left alone", Config{Netns: "/x", IfName: "eth0",
			Addresses: []netip.Addr{netip.MustParseAddr("10.244.0.5")}, Gateways: []netip.Addr{netip.MustParseAddr("10.244.0.1")}}},
		{"IPv6 only with link-local gateway", Config{Netns: "/x", IfName: "eth0", MTU: 1280,
			Addresses: []netip.Addr{netip.MustParseAddr("fd00::5")}, Gateways: []netip.Addr{gw6LinkLocal}}},
		{"dual stack, gateways in other order, 15-byte name", Config{Netns: "/x", IfName: "eth0123456789ab", MTU: 9000,
			Addresses:  []netip.Addr{netip.MustParseAddr("10.244.0.5"), netip.MustParseAddr("fd00::5")},
			Gateways:   []netip.Addr{netip.MustParseAddr("fd00::1"), netip.MustParseAddr("10.244.0.1")},
			GatewayMAC: net.HardwareAddr{2, 0xfe, 0, 0, 0, 1}}},
		{"IPv4 with the smallest MTU", Config{Netns: "/x", IfName: "eth0", MTU: 68,
			Addresses: []netip.Addr{netip.MustParseAddr("10.244.0.5")}, Gateways: []netip.Addr{netip.MustParseAddr("10.244.0.1")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fams, err := tc.cfg.validate()
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			if len(fams) != len(tc.cfg.Addresses) {
				t.Fatalf("validate paired %d families, want %d", len(fams), len(tc.cfg.Addresses))
			}
			for _, f := range fams {
				if f.addr.Is4() != f.gw.Is4() {
					t.Errorf("address %s paired with gateway %s of another family", f.addr, f.gw)
				}
			}
		})
	}
}

func TestVethArgumentValidation(t *testing.T) {
	tests := []struct {
		name      string
		pod, host string
		mtu       int
		want      string
	}{
		{"host name too long", "eth0", "kvh0123456789abc", 1500, `host name: "kvh0123456789abc" is longer than 15 bytes`},
		{"empty host name", "eth0", "", 1500, "host name: empty"},
		{"empty pod name", "", "kvh0", 1500, "pod name: empty"},
		{"MTU too small", "eth0", "kvh0", 10, "MTU 10 outside 68..65535"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CreateVeth(context.Background(), "/nonexistent/kvpn-validation", tc.pod, tc.host, tc.mtu)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CreateVeth: error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if err := DeleteVeth(context.Background(), "kvh/0"); err == nil || !strings.Contains(err.Error(), `"kvh/0" contains`) {
		t.Errorf("DeleteVeth with a bad name: error %v, want the name refused", err)
	}
}
