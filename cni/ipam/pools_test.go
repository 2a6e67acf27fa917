package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func nsReq(ns, id string, fixed ...netip.Addr) Request {
	return Request{ContainerID: id, Namespace: ns, Pod: "pod-" + id, Fixed: fixed}
}

func TestPoolsDrawOnlyFromPool(t *testing.T) {
	tests := []struct {
		name   string
		ranges []string
		pools  map[string][]netip.Prefix
		ns     string
		want   [][]netip.Addr // addresses of successive pods of ns
	}{
		{
			name:   "pool inside node range",
			ranges: []string{"10.244.0.0/24"},
			pools:  map[string][]netip.Prefix{"team-a": prefixes("10.244.0.64/30")},
			ns:     "team-a",
			// .64-.67 are all usable: reserved addresses are those of the node range, not of the pool.
			want: [][]netip.Addr{addrs("10.244.0.64"), addrs("10.244.0.65"), addrs("10.244.0.66"), addrs("10.244.0.67")},
		},
		{
			name:   "pool larger than node range is cut to it",
			ranges: []string{"10.244.0.0/29"},
			pools:  map[string][]netip.Prefix{"team-a": prefixes("10.244.0.0/16")},
			ns:     "team-a",
			want:   [][]netip.Addr{addrs("10.244.0.2"), addrs("10.244.0.3")},
		},
		{
			name:   "other namespaces skip pool ranges",
			ranges: []string{"10.244.0.0/29"},
			pools:  map[string][]netip.Prefix{"team-a": prefixes("10.244.0.2/31", "10.244.0.5/32")},
			ns:     "default",
			want:   [][]netip.Addr{addrs("10.244.0.4"), addrs("10.244.0.6")},
		},
		{
			name:   "dual-stack pool",
			ranges: []string{"10.244.0.0/24", "fd00::/64"},
			pools:  map[string][]netip.Prefix{"team-a": prefixes("10.244.0.128/25", "fd00::100/120")},
			ns:     "team-a",
			want:   [][]netip.Addr{addrs("10.244.0.128", "fd00::100"), addrs("10.244.0.129", "fd00::101")},
		},
		{
			// The pool gives no IPv6 range: IPv6 comes from the default pool.
			name:   "v4-only pool on dual-stack node",
			ranges: []string{"10.244.0.0/24", "fd00::/64"},
			pools:  map[string][]netip.Prefix{"team-a": prefixes("10.244.0.128/25")},
			ns:     "team-a",
			want:   [][]netip.Addr{addrs("10.244.0.128", "fd00::2")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAllocator(t, tt.ranges...)
			if err := a.SetPools(tt.pools); err != nil {
				t.Fatal(err)
			}
			for i, w := range tt.want {
				if got := mustAllocate(t, a, nsReq(tt.ns, fmt.Sprint(i))).IPs; !slices.Equal(got, w) {
					t.Errorf("pod %d of %s got %v, want %v", i, tt.ns, got, w)
				}
			}
		})
	}
}

func TestPoolExhaustion(t *testing.T) {
	a := newAllocator(t, "10.244.0.0/29")
	if err := a.SetPools(map[string][]netip.Prefix{"team-a": prefixes("10.244.0.4/30")}); err != nil {
		t.Fatal(err)
	}
	// The default pool is .2 and .3; .4-.6 belong to team-a (.7 is broadcast).
	mustAllocate(t, a, nsReq("default", "d1"))
	mustAllocate(t, a, nsReq("default", "d2"))
	_, err := a.Allocate(nsReq("default", "d3"))
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "10.244.0.0/29 outside namespace pools") {
		t.Errorf("default pool exhaustion error = %v", err)
	}
	for _, id := range []string{"a1", "a2", "a3"} {
		mustAllocate(t, a, nsReq("team-a", id))
	}
	_, err = a.Allocate(nsReq("team-a", "a4"))
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "namespace team-a pool 10.244.0.4/30") {
		t.Errorf("pool exhaustion error = %v", err)
	}
}

func TestSetPoolsErrors(t *testing.T) {
	tests := []struct {
		name    string
		ranges  []string
		pools   map[string][]netip.Prefix
		wantErr string
	}{
		{"outside node range", []string{"10.244.0.0/24"},
			map[string][]netip.Prefix{"team-a": prefixes("10.250.0.0/24")},
			"namespace team-a pool 10.250.0.0/24 has no part inside this node's IPv4 pod range 10.244.0.0/24"},
		{"family the node lacks", []string{"10.244.0.0/24"},
			map[string][]netip.Prefix{"team-a": prefixes("fd00::/64")},
			"namespace team-a pool fd00::/64 has no part inside this node's pod ranges: the node has no IPv6 pod range"},
		{"overlapping namespaces", []string{"10.244.0.0/24"},
			map[string][]netip.Prefix{"team-a": prefixes("10.244.0.0/25"), "team-b": prefixes("10.244.0.64/26")},
			"namespace team-a pool 10.244.0.0/25 overlaps namespace team-b pool 10.244.0.64/26"},
		{"pool larger than the node range overlapping a smaller one", []string{"10.244.0.0/24"},
			map[string][]netip.Prefix{"team-a": prefixes("10.244.0.0/16"), "team-b": prefixes("10.244.0.0/25")},
			"namespace team-a pool 10.244.0.0/16 overlaps namespace team-b pool 10.244.0.0/25"},
		{"host bits", []string{"10.244.0.0/24"},
			map[string][]netip.Prefix{"team-a": prefixes("10.244.0.5/25")},
			"namespace team-a pool 10.244.0.5/25 has host bits set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAllocator(t, tt.ranges...)
			err := a.SetPools(tt.pools)
			var pe *PoolError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("SetPools error = %v, want a *PoolError containing %q", err, tt.wantErr)
			}
		})
	}
	a, err := Open(statePath(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetPools(map[string][]netip.Prefix{"team-a": prefixes("10.244.0.0/25")}); !errors.Is(err, ErrNoRanges) {
		t.Errorf("SetPools before SetRanges: error = %v, want ErrNoRanges", err)
	}
}

func TestFixedIPWithPools(t *testing.T) {
	pools := map[string][]netip.Prefix{"team-a": prefixes("10.244.0.128/25")}
	tests := []struct {
		name    string
		req     Request
		wantErr string
	}{
		{"pooled namespace inside its pool", nsReq("team-a", "c", addrs("10.244.0.200")...), ""},
		{"pooled namespace outside its pool", nsReq("team-a", "c", addrs("10.244.0.20")...),
			"fixed IP 10.244.0.20 is outside namespace team-a pool 10.244.0.128/25"},
		{"other namespace inside a pool", nsReq("default", "c", addrs("10.244.0.200")...),
			"fixed IP 10.244.0.200 is inside namespace team-a pool 10.244.0.128/25"},
		{"other namespace outside pools", nsReq("default", "c", addrs("10.244.0.20")...), ""},
		{"pooled namespace, broadcast inside pool", nsReq("team-a", "c", addrs("10.244.0.255")...),
			"fixed IP 10.244.0.255 is the broadcast address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAllocator(t, "10.244.0.0/24")
			if err := a.SetPools(pools); err != nil {
				t.Fatal(err)
			}
			rec, err := a.Allocate(tt.req)
			if tt.wantErr == "" {
				if err != nil || !slices.Equal(rec.IPs, tt.req.Fixed) {
					t.Fatalf("Allocate = %v, %v; want %v", rec.IPs, err, tt.req.Fixed)
				}
				return
			}
			var ae *AddressError
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Allocate error = %v, want an *AddressError containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestPoolLeftByRangeChange(t *testing.T) {
	a := newAllocator(t, "10.244.0.0/24")
	if err := a.SetPools(map[string][]netip.Prefix{"team-a": prefixes("10.244.0.128/25")}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetRanges(prefixes("10.244.7.0/24")); err != nil {
		t.Fatal(err)
	}
	_, err := a.Allocate(nsReq("team-a", "c1"))
	var pe *PoolError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "has no part inside this node's IPv4 pod range 10.244.7.0/24") {
		t.Errorf("Allocate error = %v, want a *PoolError naming the new range", err)
	}
}
