package pods

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"

	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// Tag kinds of the VPP interfaces made for pods. The key names the
// container (its first 12 characters, as docker and crictl show it) and the
// pod, so `vppctl show interface` tells whose interface it is and a
// restarted agent can match interfaces to allocations.
const (
	tagKindPod   = "pod"
	tagKindMemif = "pod-memif"
)

func shortID(containerID string) string {
	if len(containerID) > 12 {
		return containerID[:12]
	}
	return containerID
}

func tagKey(containerID, namespace, name string) string {
	return shortID(containerID) + ":" + namespace + "/" + name
}

// podTag tags the interface that carries the pod's IP.
func podTag(containerID, namespace, name string) string {
	return tag.New(tagKindPod, tagKey(containerID, namespace, name))
}

// memifTag tags a pod's memif when a tap carries its IP.
func memifTag(containerID, namespace, name string) string {
	return tag.New(tagKindMemif, tagKey(containerID, namespace, name))
}

// vethName is the host end of a pod's veth: Linux allows 15 bytes, so it
// is a prefix and a hash of the container ID and interface name.
func vethName(containerID, ifName string) string {
	sum := sha256.Sum256([]byte(containerID + "/" + ifName))
	return "kvpp" + hex.EncodeToString(sum[:])[:11]
}

// podSocket is a per-pod socket path under dir, predictable from the pod's
// name so that the pod spec can mount its folder (dir/namespace/name).
func podSocket(dir, namespace, name, file string) string {
	return filepath.Join(dir, namespace, name, file)
}
