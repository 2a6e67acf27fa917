package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kube-vpp/kube-vpp/agent/config"
	"github.com/kube-vpp/kube-vpp/agent/source"
	"github.com/kube-vpp/kube-vpp/cni/pods"
)

// vhostNetDevice is what VPP's tap opens; without it taps cannot be made.
const vhostNetDevice = "/dev/vhost-net"

// podDefaultKind resolves pods.interface: auto is tap where VPP can make
// taps (the node has /dev/vhost-net), veth + af_packet elsewhere.
func podDefaultKind(cfg config.Pods, log *zap.Logger) pods.Kind {
	switch cfg.Interface {
	case config.PodInterfaceTap:
		return pods.KindTap
	case config.PodInterfaceVeth:
		log.Info("pod interfaces are veth + af_packet, as configured", zap.String("key", config.KeyPodsInterface))
		return pods.KindVeth
	}
	if _, err := os.Stat(vhostNetDevice); err != nil {
		log.Info("no "+vhostNetDevice+" on this node: VPP cannot make taps; pod interfaces fall back to veth + af_packet",
			zap.Error(err))
		return pods.KindVeth
	}
	return pods.KindTap
}

// cluster gives the pod manager the Kubernetes objects it reads, from the
// informers' caches first and the API server when a cache lags.
type cluster struct {
	src       *source.Source
	manifests bool
	log       *zap.Logger
}

func (c cluster) Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	p, err := c.src.Pods().Pods(namespace).Get(name)
	if err == nil {
		return p, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	if c.manifests {
		return nil, nil // the folder is all there is
	}
	p, err = c.src.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return p, err
}

func (c cluster) Namespaces() ([]*corev1.Namespace, error) {
	return c.src.Namespaces().List(everything())
}

func (c cluster) Annotate(ctx context.Context, namespace, name string, ann map[string]string) error {
	if c.manifests {
		c.log.Debug("not annotating a pod of the manifests folder", zap.String("pod", namespace+"/"+name), zap.Any("annotations", ann))
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	if err != nil {
		return err
	}
	if _, err := c.src.Client.CoreV1().Pods(namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("annotating pod %s/%s: %w", namespace, name, err)
	}
	return nil
}
