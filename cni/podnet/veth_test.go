package podnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// vppMAC stands in for the MAC of VPP's af_packet interface on the host end.
var vppMAC = net.HardwareAddr{0x02, 0xfe, 0x12, 0x34, 0x56, 0x78}

func TestCreateVethThenConfigure(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	ns := newNetns(t)
	host := hostName(t)

	v, err := CreateVeth(ctx, ns, "eth0", host, 1450)
	if err != nil {
		t.Fatalf("CreateVeth: %v", err)
	}
	hostLink, err := netlink.LinkByName(host)
	if err != nil {
		t.Fatalf("host end %s: %v", host, err)
	}
	podLink := mustLink(t, handleIn(t, ns), "eth0")
	if hostLink.Type() != "veth" || podLink.Type() != "veth" {
		t.Fatalf("link types %s/%s, want veth/veth", hostLink.Type(), podLink.Type())
	}
	if hostLink.Attrs().ParentIndex != podLink.Attrs().Index || podLink.Attrs().ParentIndex != hostLink.Attrs().Index {
		t.Errorf("%s and eth0 are not each other's peer", host)
	}
	if !isUp(hostLink) {
		t.Errorf("host end %s is down; af_packet needs it up", host)
	}
	if hostLink.Attrs().MTU != 1450 || podLink.Attrs().MTU != 1450 {
		t.Errorf("MTUs %d/%d, want 1450 on both ends", hostLink.Attrs().MTU, podLink.Attrs().MTU)
	}
	want := Veth{HostIndex: hostLink.Attrs().Index, HostMAC: hostLink.Attrs().HardwareAddr, PodMAC: podLink.Attrs().HardwareAddr}
	if fmt.Sprint(v) != fmt.Sprint(want) {
		t.Errorf("CreateVeth returned %+v, want %+v", v, want)
	}

	again, err := CreateVeth(ctx, ns, "eth0", host, 1450)
	if err != nil {
		t.Fatalf("second CreateVeth: %v", err)
	}
	if fmt.Sprint(again) != fmt.Sprint(v) {
		t.Errorf("second CreateVeth returned %+v, first %+v", again, v)
	}

	cfg := tunConfig(ns, true)
	cfg.GatewayMAC = vppMAC
	l, err := Configure(ctx, cfg)
	if err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if l.MAC.String() != v.PodMAC.String() || l.Index != podLink.Attrs().Index {
		t.Errorf("Configure returned %+v, want index %d MAC %s", l, podLink.Attrs().Index, v.PodMAC)
	}
	assertConfigured(t, cfg)
	assertPermanentNeighbours(t, ns, cfg)
	if _, err := Configure(ctx, cfg); err != nil {
		t.Fatalf("second Configure: %v", err)
	}
	assertPermanentNeighbours(t, ns, cfg)
	if err := Check(ctx, cfg); err != nil {
		t.Errorf("Check: %v", err)
	}

	// Neighbour differences Check must name, and Configure must repair.
	nsName := filepath.Base(ns)
	breaks := []struct {
		name string
		args []string
		want string
	}{
		{"deleted", []string{"neigh", "del", "10.244.0.1", "dev", "eth0"}, "neighbour 10.244.0.1 missing"},
		{"other MAC", []string{"neigh", "replace", "fd00:10:244::1", "lladdr", "02:00:00:00:00:09", "dev", "eth0", "nud", "permanent"},
			"neighbour fd00:10:244::1 is 02:00:00:00:00:09, want 02:fe:12:34:56:78"},
		{"not permanent", []string{"neigh", "replace", "10.244.0.1", "lladdr", vppMAC.String(), "dev", "eth0", "nud", "stale"},
			"neighbour 10.244.0.1 is stale, want permanent"},
	}
	for _, b := range breaks {
		t.Run(b.name, func(t *testing.T) {
			ipCmd(t, append([]string{"-n", nsName}, b.args...)...)
			wantErr := fmt.Sprintf("eth0 in %s: %s", ns, b.want)
			if err := Check(ctx, cfg); err == nil || err.Error() != wantErr {
				t.Errorf("Check: %v, want %q", err, wantErr)
			}
			if _, err := Configure(ctx, cfg); err != nil {
				t.Fatalf("Configure to repair: %v", err)
			}
			assertPermanentNeighbours(t, ns, cfg)
		})
	}
}

func assertPermanentNeighbours(t *testing.T, ns string, cfg Config) {
	t.Helper()
	h := handleIn(t, ns)
	link := mustLink(t, h, cfg.IfName)
	for _, gw := range cfg.Gateways {
		neighs, err := h.NeighList(link.Attrs().Index, netFamily(gw))
		if err != nil {
			t.Fatalf("list neighbours: %v", err)
		}
		var found bool
		for _, n := range neighs {
			if !n.IP.Equal(gw.AsSlice()) {
				continue
			}
			found = true
			if n.State != netlink.NUD_PERMANENT || n.HardwareAddr.String() != cfg.GatewayMAC.String() {
				t.Errorf("neighbour %s: state %#x lladdr %s, want permanent %s", gw, n.State, n.HardwareAddr, cfg.GatewayMAC)
			}
		}
		if !found {
			t.Errorf("neighbour %s missing", gw)
		}
	}
}

func TestCreateVethRefusesTakenNames(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()

	t.Run("host name held by a tun", func(t *testing.T) {
		ns := newNetns(t)
		host := hostName(t)
		ipCmd(t, "tuntap", "add", "dev", host, "mode", "tun")
		_, err := CreateVeth(ctx, ns, "eth0", host, 0)
		if err == nil || !strings.Contains(err.Error(), "host name "+host+" is taken by a tuntap link") {
			t.Errorf("CreateVeth: %v, want the taken host name reported", err)
		}
	})
	t.Run("host name held by another veth", func(t *testing.T) {
		ns := newNetns(t)
		host, peer := hostName(t), hostName(t)
		ipCmd(t, "link", "add", host, "type", "veth", "peer", "name", peer)
		_, err := CreateVeth(ctx, ns, "eth0", host, 0)
		if err == nil || !strings.Contains(err.Error(), "host name "+host+" is taken by a veth link that is not the peer of eth0 in "+ns) {
			t.Errorf("CreateVeth: %v, want the taken host name reported", err)
		}
	})
	t.Run("pod name already in the namespace", func(t *testing.T) {
		ns := newNetns(t)
		addTun(t, ns, "eth0")
		host := hostName(t)
		_, err := CreateVeth(ctx, ns, "eth0", host, 0)
		if err == nil || !strings.Contains(err.Error(), "link eth0 already exists in "+ns) {
			t.Errorf("CreateVeth: %v, want the existing pod link reported", err)
		}
		if _, err := netlink.LinkByName(host); err == nil {
			t.Errorf("host end %s was created although CreateVeth failed", host)
		}
	})
	t.Run("missing namespace", func(t *testing.T) {
		path := filepath.Join(netnsDir, "kvpn-absent-"+randomSuffix(t))
		_, err := CreateVeth(ctx, path, "eth0", hostName(t), 0)
		if !errors.Is(err, ErrNetnsNotFound) {
			t.Errorf("CreateVeth: %v, want ErrNetnsNotFound", err)
		}
	})
}

func TestDeleteVeth(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	ns := newNetns(t)
	host := hostName(t)
	if _, err := CreateVeth(ctx, ns, "eth0", host, 0); err != nil {
		t.Fatalf("CreateVeth: %v", err)
	}
	if err := DeleteVeth(ctx, host); err != nil {
		t.Fatalf("DeleteVeth: %v", err)
	}
	if _, err := netlink.LinkByName(host); err == nil {
		t.Errorf("host end %s still there", host)
	}
	if _, err := handleIn(t, ns).LinkByName("eth0"); err == nil {
		t.Errorf("pod end eth0 still there after its peer was deleted")
	}
	if err := DeleteVeth(ctx, host); err != nil {
		t.Errorf("DeleteVeth of an absent link: %v, want nil", err)
	}

	tun := hostName(t)
	ipCmd(t, "tuntap", "add", "dev", tun, "mode", "tun")
	if err := DeleteVeth(ctx, tun); err == nil || !strings.Contains(err.Error(), "not a veth") {
		t.Errorf("DeleteVeth of a tun: %v, want a refusal", err)
	}
	if _, err := netlink.LinkByName(tun); err != nil {
		t.Errorf("DeleteVeth deleted the tun %s it had to refuse: %v", tun, err)
	}
}

func TestRemove(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()

	t.Run("tun link", func(t *testing.T) {
		ns := newNetns(t)
		addTun(t, ns, "eth0")
		if err := Remove(ctx, ns, "eth0"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if _, err := handleIn(t, ns).LinkByName("eth0"); err == nil {
			t.Errorf("eth0 still there")
		}
		if err := Remove(ctx, ns, "eth0"); err != nil {
			t.Errorf("second Remove: %v, want nil", err)
		}
	})
	t.Run("veth pod end takes the host end", func(t *testing.T) {
		ns := newNetns(t)
		host := hostName(t)
		if _, err := CreateVeth(ctx, ns, "eth0", host, 0); err != nil {
			t.Fatalf("CreateVeth: %v", err)
		}
		if err := Remove(ctx, ns, "eth0"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if _, err := netlink.LinkByName(host); err == nil {
			t.Errorf("host end %s still there", host)
		}
	})
	t.Run("vanished namespace", func(t *testing.T) {
		ns := newNetns(t)
		deleteNetns(t, ns)
		if err := Remove(ctx, ns, "eth0"); err != nil {
			t.Errorf("Remove in a deleted namespace: %v, want nil", err)
		}
	})
	t.Run("exited process", func(t *testing.T) {
		// Pid numbers stop well below this (pid_max is at most 2^22).
		if err := Remove(ctx, "/proc/999999999/ns/net", "eth0"); err != nil {
			t.Errorf("Remove in an exited process's namespace: %v, want nil", err)
		}
	})
}

func TestCheckNetns(t *testing.T) {
	requireRoot(t)
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(netnsDir, "kvpn-absent-"+randomSuffix(t))
	tests := []struct {
		name    string
		path    string
		wantIs  error
		wantMsg string
	}{
		{"named namespace", newNetns(t), nil, ""},
		{"own process", "/proc/self/ns/net", nil, ""},
		{"missing", missing, ErrNetnsNotFound, "network namespace " + missing + ": no such file"},
		{"plain file", plain, ErrNotNetns, "network namespace " + plain + ": not a network namespace"},
		{"mount namespace", "/proc/self/ns/mnt", ErrNotNetns, "network namespace /proc/self/ns/mnt: not a network namespace"},
		{"empty path", "", nil, "network namespace path is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckNetns(tc.path)
			if tc.wantMsg == "" {
				if err != nil {
					t.Errorf("CheckNetns(%q): %v, want nil", tc.path, err)
				}
				return
			}
			if err == nil || err.Error() != tc.wantMsg {
				t.Errorf("CheckNetns(%q): %v, want %q", tc.path, err, tc.wantMsg)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("CheckNetns(%q): %v does not wrap %v", tc.path, err, tc.wantIs)
			}
		})
	}
}
