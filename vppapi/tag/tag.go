// Package tag names the VPP objects kube-vpp owns. A tag goes into VPP's
// 64-byte tag field (or a table name), so a restarted agent can adopt what it
// made, remove what it made and no longer wants, and leave everything else
// alone.
package tag

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Prefix starts every tag kube-vpp writes; nothing else is ours.
const Prefix = "kube-vpp:"

// MaxLen is the longest tag VPP stores: its string[64] fields keep a NUL.
const MaxLen = 63

// New returns the tag for an object of kind (interface, table, ...) with a
// key unique within that kind. A key too long for VPP is shortened to a
// prefix of it plus a hash of the whole, so tags stay unique and stable.
func New(kind, key string) string {
	t := Prefix + kind + ":" + key
	if len(t) <= MaxLen {
		return t
	}
	sum := sha256.Sum256([]byte(t))
	suffix := "~" + hex.EncodeToString(sum[:6])
	return t[:MaxLen-len(suffix)] + suffix
}

// Owned reports whether t was written by kube-vpp.
func Owned(t string) bool { return strings.HasPrefix(t, Prefix) }

// Kind returns the kind part of an owned tag, or "" for a foreign one.
func Kind(t string) string {
	if !Owned(t) {
		return ""
	}
	rest := t[len(Prefix):]
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		return rest[:i]
	}
	return ""
}
