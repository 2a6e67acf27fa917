package ipam

import (
	"errors"
	"fmt"
	"net/netip"
)

var (
	// ErrExhausted means a pool has no free address left; it is wrapped with
	// the range that ran out.
	ErrExhausted = errors.New("no free address")
	// ErrNoRanges means SetRanges has not given the node's pod ranges yet.
	ErrNoRanges = errors.New("this node's pod ranges are not set")
	// ErrUnknownContainer means no allocation is recorded for a container ID.
	ErrUnknownContainer = errors.New("no allocation for this container")
)

// AddressError rejects one address a caller asked for: a fixed IP from a pod
// annotation or an address being restored.
type AddressError struct {
	// Role says where the address came from: "fixed IP" or "restored IP".
	Role string
	Addr netip.Addr
	// Reason completes the sentence, e.g. "is outside this node's pod range 10.244.0.0/24".
	Reason string
	// Owner is the container ID holding the address when it is taken by
	// another container, else "".
	Owner string
}

func (e *AddressError) Error() string {
	return fmt.Sprintf("%s %s %s", e.Role, e.Addr, e.Reason)
}

// PoolError rejects a namespace pool range, or an allocation whose namespace
// pool cannot serve it.
type PoolError struct {
	Namespace string
	Pool      netip.Prefix
	// Reason completes the sentence, e.g. "has no part inside this node's IPv4 pod range 10.244.0.0/24".
	Reason string
}

func (e *PoolError) Error() string {
	return fmt.Sprintf("namespace %s pool %s %s", e.Namespace, e.Pool, e.Reason)
}

// shortID shortens a container ID the way container runtimes print it.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
