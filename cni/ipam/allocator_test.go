package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func statePath(t *testing.T) string { return filepath.Join(t.TempDir(), "ipam.json") }

// newAllocator opens an allocator on a fresh state file serving ranges.
func newAllocator(t *testing.T, ranges ...string) *Allocator {
	t.Helper()
	a, err := Open(statePath(t), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetRanges(prefixes(ranges...)); err != nil {
		t.Fatal(err)
	}
	return a
}

func req(id string) Request {
	return Request{ContainerID: id, IfName: "eth0", Namespace: "default", Pod: "pod-" + id}
}

func mustAllocate(t *testing.T, a *Allocator, r Request) Record {
	t.Helper()
	rec, err := a.Allocate(r)
	if err != nil {
		t.Fatalf("Allocate(%s): %v", r.ContainerID, err)
	}
	return rec
}

// A /29 has 8 addresses; network (.0), gateway (.1) and broadcast (.7) are
// reserved, leaving exactly .2-.6. The sixth pod finds the range exhausted.
func TestAllocateFillsRangeSkippingReserved(t *testing.T) {
	a := newAllocator(t, "10.244.0.0/29")
	want := addrs("10.244.0.2", "10.244.0.3", "10.244.0.4", "10.244.0.5", "10.244.0.6")
	for i, w := range want {
		rec := mustAllocate(t, a, req(fmt.Sprintf("c%d", i)))
		if !slices.Equal(rec.IPs, []netip.Addr{w}) {
			t.Fatalf("pod %d got %v, want [%s]", i, rec.IPs, w)
		}
	}
	_, err := a.Allocate(req("c5"))
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("sixth Allocate error = %v, want ErrExhausted", err)
	}
	if !strings.Contains(err.Error(), "10.244.0.0/29") {
		t.Errorf("exhaustion error %q does not name the range", err)
	}
	if _, ok := a.Get("c5"); ok {
		t.Error("failed allocation left a record")
	}
}

func TestAllocateRoundRobin(t *testing.T) {
	tests := []struct {
		name    string
		steps   []string // "+id" allocates, "-id" releases
		wantIPs map[string]string
	}{
		{
			// A released address is not reused at once: the next pod gets the one after the last handed out.
			name:    "released address not reused at once",
			steps:   []string{"+a", "+b", "-a", "+c"},
			wantIPs: map[string]string{"a": "10.244.0.2", "b": "10.244.0.3", "c": "10.244.0.4"},
		},
		{
			// After the end of the range the search wraps to the start and skips taken addresses.
			name:    "wraps around to freed addresses",
			steps:   []string{"+a", "+b", "+c", "+d", "+e", "-b", "-d", "+f", "+g"},
			wantIPs: map[string]string{"a": "10.244.0.2", "e": "10.244.0.6", "f": "10.244.0.3", "g": "10.244.0.5"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAllocator(t, "10.244.0.0/29")
			got := map[string]string{}
			for _, s := range tt.steps {
				id := s[1:]
				if s[0] == '-' {
					if _, ok, err := a.Release(id); err != nil || !ok {
						t.Fatalf("Release(%s) = %v, %v", id, ok, err)
					}
					continue
				}
				got[id] = mustAllocate(t, a, req(id)).IPs[0].String()
			}
			for id, w := range tt.wantIPs {
				if got[id] != w {
					t.Errorf("pod %s got %s, want %s", id, got[id], w)
				}
			}
		})
	}
}

func TestAllocateDualStack(t *testing.T) {
	// Kubernetes lists the primary family first; the record keeps that order.
	tests := []struct {
		ranges []string
		want   [][]netip.Addr
	}{
		{[]string{"10.244.0.0/24", "fd00::/64"}, [][]netip.Addr{addrs("10.244.0.2", "fd00::2"), addrs("10.244.0.3", "fd00::3")}},
		{[]string{"fd00::/64", "10.244.0.0/24"}, [][]netip.Addr{addrs("fd00::2", "10.244.0.2"), addrs("fd00::3", "10.244.0.3")}},
		{[]string{"fd00::/120"}, [][]netip.Addr{addrs("fd00::2"), addrs("fd00::3")}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.ranges, ","), func(t *testing.T) {
			a := newAllocator(t, tt.ranges...)
			for i, w := range tt.want {
				if got := mustAllocate(t, a, req(fmt.Sprint(i))).IPs; !slices.Equal(got, w) {
					t.Errorf("pod %d got %v, want %v", i, got, w)
				}
			}
		})
	}
}

func TestAllocateFixed(t *testing.T) {
	// Every case starts from a dual-stack node where container "owner" (pod default/web-1) holds .2 and fd00::2.
	tests := []struct {
		name      string
		req       Request
		wantIPs   []netip.Addr
		wantErr   string // substring; "" means success
		wantOwner string
	}{
		{name: "free v4, v6 allocated",
			req: Request{ContainerID: "new", Namespace: "default", Pod: "web-2", Fixed: addrs("10.244.0.9")}, wantIPs: addrs("10.244.0.9", "fd00::3")},
		{name: "both families fixed",
			req: Request{ContainerID: "new", Namespace: "default", Pod: "web-2", Fixed: addrs("fd00::99", "10.244.0.9")}, wantIPs: addrs("10.244.0.9", "fd00::99")},
		{name: "outside node range",
			req: Request{ContainerID: "new", Namespace: "default", Pod: "web-2", Fixed: addrs("10.244.1.7")}, wantErr: "fixed IP 10.244.1.7 is outside this node's pod range 10.244.0.0/24"},
		{name: "network address",
			req: Request{ContainerID: "new", Namespace: "default", Pod: "web-2", Fixed: addrs("10.244.0.0")}, wantErr: "fixed IP 10.244.0.0 is the network address"},
		{name: "gateway",
			req: Request{ContainerID: "new", Namespace: "default", Pod: "web-2", Fixed: addrs("10.244.0.1")}, wantErr: "fixed IP 10.244.0.1 is the pod gateway"},
		{name: "broadcast",
			req: Request{ContainerID: "new", Namespace: "default", Pod: "web-2", Fixed: addrs("10.244.0.255")}, wantErr: "fixed IP 10.244.0.255 is the broadcast address"},
		{name: "v6 gateway",
			req: Request{ContainerID: "new", Namespace: "default", Pod: "web-2", Fixed: addrs("fd00::1")}, wantErr: "fixed IP fd00::1 is the pod gateway"},
		{name: "taken by another container",
			req:     Request{ContainerID: "new", Namespace: "default", Pod: "web-2", Fixed: addrs("10.244.0.2")},
			wantErr: "fixed IP 10.244.0.2 is already used by pod default/web-1 (container 3f2a9c1b7d4e)", wantOwner: "3f2a9c1b7d4e5f60718293a4b5c6d7e8"},
		{name: "two of one family",
			req: Request{ContainerID: "new", Namespace: "default", Pod: "web-2", Fixed: addrs("10.244.0.9", "10.244.0.10")}, wantErr: "fixed IP 10.244.0.10 is a second IPv4 address"},
		{name: "mapped v4",
			req: Request{ContainerID: "new", Namespace: "default", Pod: "web-2", Fixed: addrs("::ffff:10.244.0.9")}, wantErr: "IPv4-mapped"},
		{name: "same container, same IP: idempotent",
			req:     Request{ContainerID: "3f2a9c1b7d4e5f60718293a4b5c6d7e8", Namespace: "default", Pod: "web-1", Fixed: addrs("10.244.0.2")},
			wantIPs: addrs("10.244.0.2", "fd00::2")},
		{name: "same container, other IP",
			req:     Request{ContainerID: "3f2a9c1b7d4e5f60718293a4b5c6d7e8", Namespace: "default", Pod: "web-1", Fixed: addrs("10.244.0.9")},
			wantErr: "fixed IP 10.244.0.9 differs from the addresses container 3f2a9c1b7d4e already holds"},
		{name: "same container, other pod",
			req:     Request{ContainerID: "3f2a9c1b7d4e5f60718293a4b5c6d7e8", Namespace: "default", Pod: "web-9"},
			wantErr: "already holds addresses for pod default/web-1"},
		{name: "empty container ID",
			req: Request{Namespace: "default", Pod: "web-2"}, wantErr: "container ID is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAllocator(t, "10.244.0.0/24", "fd00::/64")
			mustAllocate(t, a, Request{ContainerID: "3f2a9c1b7d4e5f60718293a4b5c6d7e8", Namespace: "default", Pod: "web-1"})
			rec, err := a.Allocate(tt.req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if tt.wantOwner != "" {
					var ae *AddressError
					if !errors.As(err, &ae) || ae.Owner != tt.wantOwner {
						t.Errorf("error %v: want an *AddressError with Owner %s", err, tt.wantOwner)
					}
				}
				if got := len(a.Records()); got != 1 {
					t.Errorf("%d records after a failed Allocate, want 1", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rec.IPs, tt.wantIPs) {
				t.Errorf("IPs = %v, want %v", rec.IPs, tt.wantIPs)
			}
		})
	}
}

func TestAllocateIdempotent(t *testing.T) {
	a := newAllocator(t, "10.244.0.0/24", "fd00::/64")
	first := mustAllocate(t, a, req("c1"))
	again := mustAllocate(t, a, req("c1"))
	if !slices.Equal(first.IPs, again.IPs) {
		t.Errorf("repeated Allocate got %v, first got %v", again.IPs, first.IPs)
	}
	if got := mustAllocate(t, a, req("c2")).IPs; !slices.Equal(got, addrs("10.244.0.3", "fd00::3")) {
		t.Errorf("next pod got %v, want the addresses after the first pod's", got)
	}
}

func TestAllocateWithoutRanges(t *testing.T) {
	a, err := Open(statePath(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Allocate(req("c1")); !errors.Is(err, ErrNoRanges) {
		t.Errorf("Allocate before SetRanges: error = %v, want ErrNoRanges", err)
	}
}

func TestSetRangesValidation(t *testing.T) {
	tests := []struct {
		ranges  []string
		wantErr string
	}{
		{[]string{"10.244.0.0/24"}, ""},
		{[]string{"10.244.0.0/24", "fd00::/64"}, ""},
		{[]string{"10.244.0.0/30"}, ""}, // .2 is the one pod address
		{[]string{"fd00::/126"}, ""},    // ::2 and ::3
		{nil, "none given"},
		{[]string{"10.244.0.0/31"}, "too small"},
		{[]string{"fd00::/127"}, "too small"},
		{[]string{"10.244.0.0/24", "10.245.0.0/24"}, "at most one per family"},
		{[]string{"10.244.0.5/24"}, "host bits set"},
		{[]string{"::ffff:10.244.0.0/120"}, "IPv4-mapped"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.ranges, ","), func(t *testing.T) {
			a, err := Open(statePath(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			err = a.SetRanges(prefixes(tt.ranges...))
			if tt.wantErr == "" && err != nil {
				t.Fatalf("SetRanges: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("SetRanges error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSmallestRanges(t *testing.T) {
	// /30 v4: only .2 (network .0, gateway .1, broadcast .3). /126 v6: ::2 and ::3 (no broadcast).
	a := newAllocator(t, "10.244.0.0/30")
	if got := mustAllocate(t, a, req("a")).IPs; !slices.Equal(got, addrs("10.244.0.2")) {
		t.Errorf("/30 got %v, want [10.244.0.2]", got)
	}
	if _, err := a.Allocate(req("b")); !errors.Is(err, ErrExhausted) {
		t.Errorf("second pod in /30: error = %v, want ErrExhausted", err)
	}
	b := newAllocator(t, "fd00::/126")
	for _, w := range []string{"fd00::2", "fd00::3"} {
		if got := mustAllocate(t, b, req(w)).IPs; !slices.Equal(got, addrs(w)) {
			t.Errorf("/126 got %v, want [%s]", got, w)
		}
	}
	if _, err := b.Allocate(req("c")); !errors.Is(err, ErrExhausted) {
		t.Errorf("third pod in /126: error = %v, want ErrExhausted", err)
	}
}

func TestReleaseAndGC(t *testing.T) {
	a := newAllocator(t, "10.244.0.0/24")
	for _, id := range []string{"a", "b", "c", "d"} {
		mustAllocate(t, a, req(id))
	}
	rec, ok, err := a.Release("b")
	if err != nil || !ok || !slices.Equal(rec.IPs, addrs("10.244.0.3")) {
		t.Fatalf("Release(b) = %v, %v, %v; want b's record with 10.244.0.3", rec, ok, err)
	}
	if _, ok, err := a.Release("b"); ok || err != nil {
		t.Errorf("second Release(b) = %v, %v; want false, nil", ok, err)
	}
	if _, ok, err := a.Release("unknown"); ok || err != nil {
		t.Errorf("Release(unknown) = %v, %v; want false, nil", ok, err)
	}

	released, err := a.GC(map[string]bool{"a": true, "x": true})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range released {
		ids = append(ids, r.ContainerID)
	}
	if !slices.Equal(ids, []string{"c", "d"}) {
		t.Errorf("GC released %v, want [c d]", ids)
	}
	if got := a.Records(); len(got) != 1 || got[0].ContainerID != "a" {
		t.Errorf("records after GC = %v, want only a", got)
	}
	if released, err := a.GC(map[string]bool{"a": true}); err != nil || len(released) != 0 {
		t.Errorf("GC with nothing stale = %v, %v; want nothing", released, err)
	}
}

func TestRangeChange(t *testing.T) {
	a := newAllocator(t, "10.244.0.0/24")
	old := mustAllocate(t, a, req("old"))
	if err := a.SetRanges(prefixes("10.244.5.0/24")); err != nil {
		t.Fatal(err)
	}
	// The old pod keeps its address; new pods come from the new range.
	out := a.OutsideRanges()
	if len(out) != 1 || out[0].ContainerID != "old" || !slices.Equal(out[0].IPs, old.IPs) {
		t.Errorf("OutsideRanges = %v, want the old pod's record", out)
	}
	if got := mustAllocate(t, a, req("new")).IPs; !slices.Equal(got, addrs("10.244.5.2")) {
		t.Errorf("new pod got %v, want [10.244.5.2]", got)
	}
	if got := mustAllocate(t, a, req("old")).IPs; !slices.Equal(got, old.IPs) {
		t.Errorf("repeated Allocate for the old pod got %v, want %v", got, old.IPs)
	}
}

func TestRestore(t *testing.T) {
	tests := []struct {
		name    string
		rec     Record
		wantErr string
	}{
		{name: "valid", rec: Record{ContainerID: "r1", Namespace: "default", Pod: "p", IPs: addrs("fd00::7", "10.244.0.7")}},
		{name: "same as existing", rec: Record{ContainerID: "held", Namespace: "default", Pod: "pod-held", IPs: addrs("10.244.0.2", "fd00::2")}},
		{name: "existing with other IPs", rec: Record{ContainerID: "held", Namespace: "default", Pod: "pod-held", IPs: addrs("10.244.0.8")}, wantErr: "already holds 10.244.0.2, fd00::2"},
		{name: "taken", rec: Record{ContainerID: "r1", Namespace: "default", Pod: "p", IPs: addrs("10.244.0.2")}, wantErr: "restored IP 10.244.0.2 is already used by pod default/pod-held (container held)"},
		{name: "outside", rec: Record{ContainerID: "r1", Namespace: "default", Pod: "p", IPs: addrs("10.9.0.2")}, wantErr: "restored IP 10.9.0.2 is outside this node's pod range 10.244.0.0/24"},
		{name: "gateway", rec: Record{ContainerID: "r1", Namespace: "default", Pod: "p", IPs: addrs("10.244.0.1")}, wantErr: "is the pod gateway"},
		{name: "no IPs", rec: Record{ContainerID: "r1", Namespace: "default", Pod: "p"}, wantErr: "no addresses"},
		{name: "bad extra", rec: Record{ContainerID: "r1", Namespace: "default", Pod: "p", IPs: addrs("10.244.0.7"), Extra: []byte("{")}, wantErr: "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAllocator(t, "10.244.0.0/24", "fd00::/64")
			mustAllocate(t, a, req("held"))
			err := a.Restore(tt.rec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Restore error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, ok := a.Get(tt.rec.ContainerID)
			if !ok || !sameAddrs(got.IPs, tt.rec.IPs) {
				t.Fatalf("Get after Restore = %v, %v", got, ok)
			}
			if !got.IPs[0].Is4() {
				t.Errorf("restored IPs %v not in the node's family order (IPv4 first)", got.IPs)
			}
			// A restored address is taken: the next pod gets another one.
			for _, ip := range mustAllocate(t, a, req("next")).IPs {
				if slices.Contains(got.IPs, ip) {
					t.Errorf("next pod got restored address %s", ip)
				}
			}
		})
	}
}

func TestSetExtra(t *testing.T) {
	a := newAllocator(t, "10.244.0.0/24")
	mustAllocate(t, a, Request{ContainerID: "c1", Namespace: "default", Pod: "p", Extra: []byte(`{"kind": "tap"}`)})
	if err := a.SetExtra("c1", []byte(`{"kind":"memif","socket":"/run/m.sock"}`)); err != nil {
		t.Fatal(err)
	}
	rec, _ := a.Get("c1")
	if string(rec.Extra) != `{"kind":"memif","socket":"/run/m.sock"}` {
		t.Errorf("Extra = %s", rec.Extra)
	}
	if err := a.SetExtra("nope", []byte(`{}`)); !errors.Is(err, ErrUnknownContainer) {
		t.Errorf("SetExtra(unknown) error = %v, want ErrUnknownContainer", err)
	}
	if err := a.SetExtra("c1", []byte(`{`)); err == nil {
		t.Error("SetExtra with invalid JSON succeeded")
	}
}
