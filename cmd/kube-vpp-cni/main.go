// Command kube-vpp-cni is the CNI plugin kubelet runs for pods on kube-vpp nodes.
// It forwards each call to the kube-vpp agent on the node.
package main

import (
	"os"

	"github.com/kube-vpp/kube-vpp/cni/plugin"
)

func main() {
	os.Exit(plugin.Main())
}
