// Package ipam hands out pod addresses from the node's pod CIDRs.
//
// Each pod gets one address per family the node has. The network address,
// the pod gateway (the first host address, held by the node's VPP loopback)
// and the IPv4 broadcast address are never handed out. Addresses are picked
// round-robin, so a released address is not reused at once. Namespaces may
// own pools: their pods draw only from them and no other pod does. Every
// change is written to a JSON state file before the call returns.
package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// Record is the allocation of one container.
type Record struct {
	ContainerID string       `json:"containerID"`
	IfName      string       `json:"ifName"`
	Namespace   string       `json:"namespace"`
	Pod         string       `json:"pod"`
	IPs         []netip.Addr `json:"ips"`
	// Extra is opaque data the caller stores with the allocation (interface
	// kind, netns, sockets).
	Extra json.RawMessage `json:"extra,omitempty"`
}

func (r Record) clone() Record {
	r.IPs = slices.Clone(r.IPs)
	r.Extra = slices.Clone(r.Extra)
	return r
}

// Request asks for the addresses of one container.
type Request struct {
	ContainerID string
	IfName      string
	Namespace   string
	Pod         string
	// Fixed holds the addresses the pod asks for, at most one per family;
	// families without one are allocated.
	Fixed []netip.Addr
	Extra json.RawMessage
}

// Allocator is the node-local address allocator. It is safe for concurrent use.
type Allocator struct {
	path string
	log  *zap.Logger

	mu      sync.Mutex
	ranges  []netip.Prefix            // the node's pod CIDRs, primary family first
	pools   map[string][]netip.Prefix // namespace -> pool ranges
	records map[string]*Record        // by container ID
	owners  map[netip.Addr]string     // address -> container ID
	cursors map[cursorKey]netip.Addr  // last address picked per pool and family
}

// Open returns an allocator keeping its state in stateFile, loading the
// allocations already recorded there. A corrupt or unreadable file is an error
// naming the path; the caller may then rebuild the state with Restore.
func Open(stateFile string, log *zap.Logger) (*Allocator, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := os.MkdirAll(filepath.Dir(stateFile), 0o700); err != nil {
		return nil, fmt.Errorf("create IPAM state directory for %s: %w", stateFile, err)
	}
	records, cursors, err := loadState(stateFile)
	if err != nil {
		return nil, err
	}
	a := &Allocator{
		path:    stateFile,
		log:     log,
		records: records,
		owners:  map[netip.Addr]string{},
		cursors: cursors,
	}
	for id, r := range records {
		for _, ip := range r.IPs {
			a.owners[ip] = id
		}
	}
	log.Info("IPAM state loaded", zap.String("path", stateFile), zap.Int("records", len(records)))
	return a, nil
}

// Allocate returns the addresses of req's container, one per family of the
// node. A container that already holds addresses gets the same ones back, as
// long as req's fixed IPs are among them.
func (a *Allocator) Allocate(req Request) (Record, error) {
	pod := req.Namespace + "/" + req.Pod
	if req.ContainerID == "" {
		return Record{}, fmt.Errorf("allocate for pod %s: container ID is empty", pod)
	}
	fail := func(err error) (Record, error) {
		return Record{}, fmt.Errorf("allocate for pod %s (container %s): %w", pod, shortID(req.ContainerID), err)
	}
	extra, err := normalizeExtra(req.Extra)
	if err != nil {
		return fail(err)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.ranges) == 0 {
		return fail(ErrNoRanges)
	}
	if r, ok := a.records[req.ContainerID]; ok {
		if err := compatible(r, req); err != nil {
			return fail(err)
		}
		a.log.Debug("IPAM allocation reused", zap.String("container", req.ContainerID), zap.String("pod", pod))
		return r.clone(), nil
	}

	fixed, err := a.checkAddrs("fixed IP", req.Namespace, req.ContainerID, req.Fixed)
	if err != nil {
		return fail(err)
	}

	rec := &Record{ContainerID: req.ContainerID, IfName: req.IfName, Namespace: req.Namespace, Pod: req.Pod, Extra: extra}
	picked := map[cursorKey]netip.Addr{}
	for _, r := range a.ranges {
		f := familyOf(r.Addr())
		if ip, ok := fixed[f]; ok {
			rec.IPs = append(rec.IPs, ip)
			continue
		}
		ip, key, err := a.pick(req.Namespace, r)
		if err != nil {
			return fail(err)
		}
		rec.IPs = append(rec.IPs, ip)
		picked[key] = ip
	}

	oldCursors := maps.Clone(a.cursors)
	maps.Copy(a.cursors, picked)
	a.add(rec)
	if err := a.save(); err != nil {
		a.remove(rec.ContainerID)
		a.cursors = oldCursors
		return fail(err)
	}
	a.log.Info("IPAM allocated", zap.String("container", rec.ContainerID), zap.String("pod", pod),
		zap.Stringers("ips", rec.IPs))
	return rec.clone(), nil
}

// compatible checks that a repeated request for r's container asks for what r holds.
func compatible(r *Record, req Request) error {
	if r.Namespace != req.Namespace || r.Pod != req.Pod {
		return fmt.Errorf("container %s already holds addresses for pod %s/%s", shortID(r.ContainerID), r.Namespace, r.Pod)
	}
	for _, ip := range req.Fixed {
		if !slices.Contains(r.IPs, ip) {
			return &AddressError{Role: "fixed IP", Addr: ip,
				Reason: fmt.Sprintf("differs from the addresses container %s already holds (%s)", shortID(r.ContainerID), joinAddrs(r.IPs))}
		}
	}
	return nil
}

// Release frees the addresses of containerID. Releasing a container without
// an allocation is not an error: it returns false.
func (a *Allocator) Release(containerID string) (Record, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.records[containerID]
	if !ok {
		return Record{}, false, nil
	}
	a.remove(containerID)
	if err := a.save(); err != nil {
		a.add(r)
		return Record{}, false, fmt.Errorf("release container %s: %w", containerID, err)
	}
	a.log.Info("IPAM released", zap.String("container", containerID),
		zap.String("pod", r.Namespace+"/"+r.Pod), zap.Stringers("ips", r.IPs))
	return r.clone(), true, nil
}

// GC releases every container not in valid and returns what it released,
// sorted by container ID.
func (a *Allocator) GC(valid map[string]bool) ([]Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var released []*Record
	for id, r := range a.records {
		if !valid[id] {
			released = append(released, r)
		}
	}
	if len(released) == 0 {
		return nil, nil
	}
	for _, r := range released {
		a.remove(r.ContainerID)
	}
	if err := a.save(); err != nil {
		for _, r := range released {
			a.add(r)
		}
		return nil, fmt.Errorf("IPAM garbage collection of %d containers: %w", len(released), err)
	}
	out := make([]Record, 0, len(released))
	for _, r := range released {
		a.log.Info("IPAM released stale allocation", zap.String("container", r.ContainerID),
			zap.String("pod", r.Namespace+"/"+r.Pod), zap.Stringers("ips", r.IPs))
		out = append(out, r.clone())
	}
	sortRecords(out)
	return out, nil
}

// Get returns the allocation of containerID.
func (a *Allocator) Get(containerID string) (Record, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.records[containerID]
	if !ok {
		return Record{}, false
	}
	return r.clone(), true
}

// Records returns every allocation, sorted by container ID.
func (a *Allocator) Records() []Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Record, 0, len(a.records))
	for _, r := range a.records {
		out = append(out, r.clone())
	}
	sortRecords(out)
	return out
}

// Restore records an allocation learned from another source, such as the
// tags and routes the agent finds in VPP when the state file is lost. Its
// addresses are checked like fixed IPs. Restoring what is already recorded
// is a no-op.
func (a *Allocator) Restore(r Record) error {
	if r.ContainerID == "" {
		return fmt.Errorf("restore for pod %s/%s: container ID is empty", r.Namespace, r.Pod)
	}
	fail := func(err error) error {
		return fmt.Errorf("restore for pod %s/%s (container %s): %w", r.Namespace, r.Pod, shortID(r.ContainerID), err)
	}
	if len(r.IPs) == 0 {
		return fail(errors.New("no addresses"))
	}
	extra, err := normalizeExtra(r.Extra)
	if err != nil {
		return fail(err)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.ranges) == 0 {
		return fail(ErrNoRanges)
	}
	byFamily, err := a.checkAddrs("restored IP", r.Namespace, r.ContainerID, r.IPs)
	if err != nil {
		return fail(err)
	}
	if old, ok := a.records[r.ContainerID]; ok {
		if old.Namespace == r.Namespace && old.Pod == r.Pod && sameAddrs(old.IPs, r.IPs) {
			return nil
		}
		return fail(fmt.Errorf("container already holds %s for pod %s/%s", joinAddrs(old.IPs), old.Namespace, old.Pod))
	}

	rec := r.clone()
	rec.Extra = extra
	rec.IPs = rec.IPs[:0]
	for _, rg := range a.ranges { // keep the node's family order
		if ip, ok := byFamily[familyOf(rg.Addr())]; ok {
			rec.IPs = append(rec.IPs, ip)
		}
	}
	a.add(&rec)
	if err := a.save(); err != nil {
		a.remove(rec.ContainerID)
		return fail(err)
	}
	a.log.Info("IPAM allocation restored", zap.String("container", rec.ContainerID),
		zap.String("pod", rec.Namespace+"/"+rec.Pod), zap.Stringers("ips", rec.IPs))
	return nil
}

// SetExtra replaces the opaque data stored with containerID's allocation.
func (a *Allocator) SetExtra(containerID string, extra json.RawMessage) error {
	extra, err := normalizeExtra(extra)
	if err != nil {
		return fmt.Errorf("set extra of container %s: %w", containerID, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.records[containerID]
	if !ok {
		return fmt.Errorf("set extra of container %s: %w", containerID, ErrUnknownContainer)
	}
	old := r.Extra
	r.Extra = extra
	if err := a.save(); err != nil {
		r.Extra = old
		return fmt.Errorf("set extra of container %s: %w", containerID, err)
	}
	a.log.Debug("IPAM extra updated", zap.String("container", containerID))
	return nil
}

func (a *Allocator) add(r *Record) {
	a.records[r.ContainerID] = r
	for _, ip := range r.IPs {
		a.owners[ip] = r.ContainerID
	}
}

func (a *Allocator) remove(containerID string) {
	r := a.records[containerID]
	delete(a.records, containerID)
	for _, ip := range r.IPs {
		if a.owners[ip] == containerID {
			delete(a.owners, ip)
		}
	}
}

// save writes the state file; callers hold a.mu and undo their change when it fails.
func (a *Allocator) save() error {
	data, err := encodeState(a.records, a.cursors)
	if err != nil {
		return fmt.Errorf("encode IPAM state: %w", err)
	}
	if err := writeAtomic(a.path, data); err != nil {
		return fmt.Errorf("write IPAM state file %s: %w", a.path, err)
	}
	return nil
}

func normalizeExtra(extra json.RawMessage) (json.RawMessage, error) {
	if len(extra) == 0 {
		return nil, nil
	}
	return compactJSON(extra)
}

func sortRecords(rs []Record) {
	slices.SortFunc(rs, func(x, y Record) int { return strings.Compare(x.ContainerID, y.ContainerID) })
}

func sameAddrs(x, y []netip.Addr) bool {
	if len(x) != len(y) {
		return false
	}
	for _, ip := range y {
		if !slices.Contains(x, ip) {
			return false
		}
	}
	return true
}

func joinAddrs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

// checkAddrs checks each of ips as checkAddr does, and that no family
// comes twice; it returns them by family. a.mu is held.
func (a *Allocator) checkAddrs(role, namespace, containerID string, ips []netip.Addr) (map[family]netip.Addr, error) {
	out := map[family]netip.Addr{}
	for _, ip := range ips {
		if err := a.checkAddr(role, namespace, containerID, ip); err != nil {
			return nil, err
		}
		f := familyOf(ip)
		if _, dup := out[f]; dup {
			return nil, &AddressError{Role: role, Addr: ip, Reason: fmt.Sprintf("is a second %s address; a pod gets one per family", f)}
		}
		out[f] = ip
	}
	return out, nil
}
