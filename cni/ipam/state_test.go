package ipam

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestPersistenceRoundTrip(t *testing.T) {
	path := statePath(t)
	ranges := prefixes("10.244.0.0/24", "fd00::/64")
	pools := map[string][]netip.Prefix{"team-a": prefixes("10.244.0.128/25")}
	open := func() *Allocator {
		t.Helper()
		a, err := Open(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.SetRanges(ranges); err != nil {
			t.Fatal(err)
		}
		if err := a.SetPools(pools); err != nil {
			t.Fatal(err)
		}
		return a
	}

	a := open()
	mustAllocate(t, a, Request{ContainerID: "c1", IfName: "eth0", Namespace: "default", Pod: "p1", Extra: []byte(`{"kind":"tap"}`)})
	mustAllocate(t, a, req("c2"))
	mustAllocate(t, a, nsReq("team-a", "c3"))
	if _, _, err := a.Release("c2"); err != nil {
		t.Fatal(err)
	}
	if err := a.Restore(Record{ContainerID: "c4", Namespace: "default", Pod: "p4", IPs: addrs("10.244.0.50")}); err != nil {
		t.Fatal(err)
	}
	before := a.Records()

	b := open()
	if got := b.Records(); !recordsEqual(got, before) {
		t.Fatalf("records after reopen:\n%v\nwant\n%v", got, before)
	}
	// Round-robin continues after the last default-pool address (.3, released) and the last pool address (.128).
	if got := mustAllocate(t, b, req("c5")).IPs; !slices.Equal(got, addrs("10.244.0.4", "fd00::5")) {
		t.Errorf("next default pod after reopen got %v, want [10.244.0.4 fd00::5]", got)
	}
	if got := mustAllocate(t, b, nsReq("team-a", "c6")).IPs; !slices.Equal(got, addrs("10.244.0.129", "fd00::6")) {
		t.Errorf("next team-a pod after reopen got %v, want [10.244.0.129 fd00::6]", got)
	}

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("state file mode = %o, want 600", mode)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(path) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("state directory holds %v, want only %s (no temporary files)", names, filepath.Base(path))
	}
}

func recordsEqual(x, y []Record) bool {
	return slices.EqualFunc(x, y, func(a, b Record) bool {
		return a.ContainerID == b.ContainerID && a.IfName == b.IfName && a.Namespace == b.Namespace &&
			a.Pod == b.Pod && slices.Equal(a.IPs, b.IPs) && string(a.Extra) == string(b.Extra)
	})
}

func TestOpenBadStateFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr string
	}{
		{"not JSON", "{\"version\": 1, \"records\": [", "is corrupt"},
		{"empty", "", "is corrupt"},
		{"bad address", `{"version":1,"records":[{"containerID":"a","ips":["10.244.0.300"]}]}`, "is corrupt"},
		{"unknown version", `{"version":7,"records":[]}`, "has version 7"},
		{"duplicate container", `{"version":1,"records":[{"containerID":"a","ips":["10.244.0.2"]},{"containerID":"a","ips":["10.244.0.3"]}]}`, "recorded twice"},
		{"shared address", `{"version":1,"records":[{"containerID":"a","ips":["10.244.0.2"]},{"containerID":"b","ips":["10.244.0.2"]}]}`, "held by both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := statePath(t)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(path, nil)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Open error = %v, want one naming %s and containing %q", err, path, tt.wantErr)
			}
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		path := statePath(t)
		if err := os.Mkdir(path, 0o700); err != nil { // a directory where the file should be
			t.Fatal(err)
		}
		if _, err := Open(path, nil); err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("Open error = %v, want one naming %s", err, path)
		}
	})
}

func TestFailedWriteKeepsState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ipam.json")
	a, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetRanges(prefixes("10.244.0.0/24")); err != nil {
		t.Fatal(err)
	}
	mustAllocate(t, a, req("c1"))
	// Replace the directory by a file so the next write cannot create its temporary file.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Allocate(req("c2")); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Allocate with an unwritable state file: error = %v, want one naming %s", err, path)
	}
	if _, ok, err := a.Release("c1"); err == nil || ok {
		t.Errorf("Release with an unwritable state file = %v, %v; want an error", ok, err)
	}
	if got := a.Records(); len(got) != 1 || got[0].ContainerID != "c1" {
		t.Errorf("records after failed writes = %v, want only c1", got)
	}
	// The failed Allocate did not advance round-robin: once the directory is back, the next pod gets .3.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if got := mustAllocate(t, a, req("c3")).IPs; !slices.Equal(got, addrs("10.244.0.3")) {
		t.Errorf("pod after the failed writes got %v, want [10.244.0.3]", got)
	}
}

func TestConcurrentAllocate(t *testing.T) {
	const n = 50
	path := statePath(t)
	a, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetRanges(prefixes("10.244.0.0/24", "fd00::/64")); err != nil {
		t.Fatal(err)
	}
	results := make([]Record, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = a.Allocate(req(fmt.Sprintf("c%02d", i)))
		})
	}
	wg.Wait()

	seen := map[netip.Addr]string{}
	for i, rec := range results {
		if errs[i] != nil {
			t.Fatalf("Allocate %d: %v", i, errs[i])
		}
		if len(rec.IPs) != 2 {
			t.Fatalf("pod %d got %v, want one address per family", i, rec.IPs)
		}
		for _, ip := range rec.IPs {
			if other, dup := seen[ip]; dup {
				t.Errorf("%s handed to both %s and %s", ip, other, rec.ContainerID)
			}
			seen[ip] = rec.ContainerID
		}
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Records []Record `json:"records"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Records) != n {
		t.Fatalf("state file lists %d records, want %d", len(st.Records), n)
	}
	for _, r := range st.Records {
		for _, ip := range r.IPs {
			if seen[ip] != r.ContainerID {
				t.Errorf("state file gives %s to %s, Allocate gave it to %q", ip, r.ContainerID, seen[ip])
			}
		}
	}
}
