package ipam

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

const stateVersion = 1

// stateFile is the JSON layout of the state file.
type stateFile struct {
	Version int      `json:"version"`
	Records []Record `json:"records"`
	Cursors []cursor `json:"cursors,omitempty"`
}

// cursor is the last address handed out from one pool, where the next
// round-robin search starts.
type cursor struct {
	// Namespace names the namespace pool; "" is the node's default pool.
	Namespace string     `json:"namespace,omitempty"`
	Last      netip.Addr `json:"last"`
}

type cursorKey struct {
	namespace string
	family    family
}

// loadState reads path. A missing file is an empty state; anything else that
// cannot be read or does not hold a consistent state is an error naming path.
func loadState(path string) (map[string]*Record, map[cursorKey]netip.Addr, error) {
	records := map[string]*Record{}
	cursors := map[cursorKey]netip.Addr{}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return records, cursors, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read IPAM state file %s: %w", path, err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, nil, fmt.Errorf("IPAM state file %s is corrupt: %w", path, err)
	}
	if st.Version != stateVersion {
		return nil, nil, fmt.Errorf("IPAM state file %s has version %d, want %d", path, st.Version, stateVersion)
	}
	owners := map[netip.Addr]string{}
	for i := range st.Records {
		r := &st.Records[i]
		if r.ContainerID == "" {
			return nil, nil, fmt.Errorf("IPAM state file %s is corrupt: record %d has no container ID", path, i)
		}
		if _, dup := records[r.ContainerID]; dup {
			return nil, nil, fmt.Errorf("IPAM state file %s is corrupt: container %s is recorded twice", path, r.ContainerID)
		}
		for _, ip := range r.IPs {
			if !ip.IsValid() {
				return nil, nil, fmt.Errorf("IPAM state file %s is corrupt: container %s has an invalid address", path, r.ContainerID)
			}
			if other, dup := owners[ip]; dup {
				return nil, nil, fmt.Errorf("IPAM state file %s is corrupt: address %s is held by both container %s and container %s",
					path, ip, other, r.ContainerID)
			}
			owners[ip] = r.ContainerID
		}
		if len(r.Extra) > 0 {
			extra, err := compactJSON(r.Extra)
			if err != nil {
				return nil, nil, fmt.Errorf("IPAM state file %s is corrupt: container %s: %w", path, r.ContainerID, err)
			}
			r.Extra = extra
		}
		records[r.ContainerID] = r
	}
	for _, c := range st.Cursors {
		if !c.Last.IsValid() {
			return nil, nil, fmt.Errorf("IPAM state file %s is corrupt: invalid cursor address", path)
		}
		cursors[cursorKey{c.Namespace, familyOf(c.Last)}] = c.Last
	}
	return records, cursors, nil
}

// encodeState renders the state with records sorted by container ID and
// cursors sorted by pool, so equal states give equal files.
func encodeState(records map[string]*Record, cursors map[cursorKey]netip.Addr) ([]byte, error) {
	st := stateFile{Version: stateVersion, Records: make([]Record, 0, len(records))}
	for _, r := range records {
		st.Records = append(st.Records, *r)
	}
	slices.SortFunc(st.Records, func(a, b Record) int { return strings.Compare(a.ContainerID, b.ContainerID) })
	for k, last := range cursors {
		st.Cursors = append(st.Cursors, cursor{Namespace: k.namespace, Last: last})
	}
	slices.SortFunc(st.Cursors, func(a, b cursor) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return a.Last.Compare(b.Last)
	})
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// writeAtomic replaces path with data so that a crash leaves either the old
// or the new file, never a torn one: write a temporary file in the same
// directory, fsync it, rename it over path, then fsync the directory so the
// rename itself is durable.
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	// CreateTemp already uses 0600; Chmod makes the mode independent of that detail.
	if err = tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func compactJSON(raw json.RawMessage) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("extra is not valid JSON: %w", err)
	}
	return buf.Bytes(), nil
}
