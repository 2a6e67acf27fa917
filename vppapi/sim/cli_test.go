package sim

import (
	"regexp"
	"strings"
	"testing"

	"go.fd.io/govpp/binapi/vlib"
)

func (f *fixture) cli(cmd string) (string, int32) {
	f.t.Helper()
	rep := &vlib.CliInbandReply{}
	if err := f.conn.Invoke(f.ctx, &vlib.CliInband{Cmd: cmd}, rep); err != nil {
		f.t.Fatalf("cli_inband %q: %v", cmd, err)
	}
	return rep.Reply, rep.Retval
}

func TestCLI(t *testing.T) {
	f := newFixture(t)
	lo := f.loopback()
	f.address(lo, "10.0.0.1/24", true)
	f.addTable(5, false, "")

	// Rows are format_vnet_sw_interface: %-32s%=5d%=10s%=21s; clib's centring
	// puts the odd pad byte on the left.
	header := "              Name               Idx    State  MTU (L3/IP4/IP6/MPLS)     Counter          Count     \n"
	local0 := "local0" + strings.Repeat(" ", 26) + "  0  " + "   down   " + "       0/0/0/0       \n"
	loop0 := "loop0" + strings.Repeat(" ", 27) + "  2  " + "    up    " + "      9000/0/0/0     \n"
	eth0Row := "eth0" + strings.Repeat(" ", 28) + "  1  " + "   down   " + "      9000/0/0/0     \n"

	for _, tc := range []struct {
		cmd      string
		rv       int32
		exact    string         // whole reply, when set
		contains []string       // otherwise, parts of the reply
		match    *regexp.Regexp // or a pattern
	}{
		// vpe_version_string in src/vpp/app/version.c.
		{cmd: "show version", match: regexp.MustCompile(`^vpp v25\.10-release built by \S+ on \S+ at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\n$`)},
		{cmd: "sh ver", match: regexp.MustCompile(`^vpp v25\.10-release built by `)},
		// show_sw_interfaces: header, then interfaces sorted by name.
		{cmd: "sh int", exact: header + eth0Row + local0 + loop0},
		{cmd: "show interface loop0", exact: header + loop0},
		{cmd: "show interface address", exact: "eth0 (dn):\nlocal0 (dn):\nloop0 (up):\n  L3 10.0.0.1/24\n"},
		{cmd: "sh int 7", rv: -1, exact: "show interface: unknown interface index `7'\n"},
		{cmd: "show interface bogus", rv: -1, exact: "show interface: unknown input `bogus'\n"},
		{cmd: "sh int loop0 tag", exact: "loop0: (none)\n"},
		// ip4_show_fib.
		{cmd: "sh ip fib", contains: []string{
			"ipv4-VRF:0, fib_index:0, flow hash:[src dst sport dport proto flowlabel ] epoch:0 flags:none locks:[default-route:1, ]\n",
			"0.0.0.0/0\n  unicast-ip4-chain\n", "    [@0]: dpo-drop ip4\n",
			"10.0.0.1/32\n", "dpo-receive: 10.0.0.1 on loop0\n",
			"10.0.0.0/24\n", "ipv4-glean: [src:10.0.0.0/24] loop0\n",
			"ipv4-VRF:5, fib_index:1,", "locks:[API:1, ]\n",
		}},
		{cmd: "show ip fib table 5", match: regexp.MustCompile(`^ipv4-VRF:5, fib_index:1, [^\n]*\n0\.0\.0\.0/0\n`)},
		{cmd: "show ip6 fib", contains: []string{"ipv6-VRF:0, fib_index:0,", "::/0\n  unicast-ip6-chain\n", "fe80::/10\n", "ip6-link-local\n"}},
		// vlib_cli_dispatch_sub_commands: unknown or ambiguous words.
		{cmd: "foo bar", rv: -1, exact: "unknown input `foo bar'\n"},
		{cmd: "show foo", rv: -1, exact: "show: unknown input `foo'\n"},
		{cmd: "sh i", rv: -1, exact: "show: unknown input `i'\n"},
		{cmd: "show ip", rv: -1, exact: "show ip: unknown input `'\n"},
		{cmd: "show " + strings.Repeat("x", 40), rv: -1, exact: "show: unknown input `" + strings.Repeat("x", 30) + "...'\n"},
		{cmd: "show hardware-interfaces", rv: -1, exact: "show hardware-interfaces: not available in the VPP simulator\n"},
	} {
		got, rv := f.cli(tc.cmd)
		if rv != tc.rv {
			t.Errorf("%q: retval %d, want %d (reply %q)", tc.cmd, rv, tc.rv, got)
		}
		switch {
		case tc.exact != "" && got != tc.exact:
			t.Errorf("%q replied\n%q\nwant\n%q", tc.cmd, got, tc.exact)
		case tc.match != nil && !tc.match.MatchString(got):
			t.Errorf("%q replied %q, want a match of %s", tc.cmd, got, tc.match)
		}
		for _, part := range tc.contains {
			if !strings.Contains(got, part) {
				t.Errorf("%q reply lacks %q:\n%s", tc.cmd, part, got)
			}
		}
	}
}
