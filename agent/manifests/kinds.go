package manifests

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// kind describes one of the object kinds the agent reads.
type kind struct {
	gvk        schema.GroupVersionKind
	resource   string
	namespaced bool
	// validName returns why a name is not acceptable for the kind, as the API
	// server's name validation for it would.
	validName func(string) []string
}

func (k kind) gvr() schema.GroupVersionResource { return k.gvk.GroupVersion().WithResource(k.resource) }

// kinds lists the kinds the agent reads, in a fixed order.
func kinds() []kind {
	return []kind{
		{corev1.SchemeGroupVersion.WithKind("Namespace"), "namespaces", false, validation.IsDNS1123Label},
		{corev1.SchemeGroupVersion.WithKind("Node"), "nodes", false, validation.IsDNS1123Subdomain},
		{corev1.SchemeGroupVersion.WithKind("Pod"), "pods", true, validation.IsDNS1123Subdomain},
		{corev1.SchemeGroupVersion.WithKind("Service"), "services", true, validation.IsDNS1035Label},
		{discoveryv1.SchemeGroupVersion.WithKind("EndpointSlice"), "endpointslices", true, validation.IsDNS1123Subdomain},
		{networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"), "networkpolicies", true, validation.IsDNS1123Subdomain},
	}
}

// kindByGroupKind finds a supported kind by group and kind, whatever the version.
func kindByGroupKind(gk schema.GroupKind) (kind, bool) {
	for _, k := range kinds() {
		if k.gvk.GroupKind() == gk {
			return k, true
		}
	}
	return kind{}, false
}

// kindByGVR finds a supported kind by its resource.
func kindByGVR(gvr schema.GroupVersionResource) (kind, bool) {
	for _, k := range kinds() {
		if k.gvr() == gvr {
			return k, true
		}
	}
	return kind{}, false
}

// kindOf finds the kind of a typed object by its Go type, since objects built
// in code usually carry no apiVersion and kind.
func kindOf(obj runtime.Object) (kind, bool) {
	var name string
	switch obj.(type) {
	case *corev1.Namespace:
		name = "Namespace"
	case *corev1.Node:
		name = "Node"
	case *corev1.Pod:
		name = "Pod"
	case *corev1.Service:
		name = "Service"
	case *discoveryv1.EndpointSlice:
		name = "EndpointSlice"
	case *networkingv1.NetworkPolicy:
		name = "NetworkPolicy"
	default:
		return kind{}, false
	}
	for _, k := range kinds() {
		if k.gvk.Kind == name {
			return k, true
		}
	}
	return kind{}, false
}
