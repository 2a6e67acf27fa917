// Package source provides the Kubernetes objects the agent reads, through
// shared informers over either an API server or a folder of manifests.
package source

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kube-vpp/kube-vpp/agent/manifests"
)

// userAgent names the agent in the API server's logs and metrics.
const userAgent = "kube-vpp-agent"

// Source holds the clientset and the informers for Nodes, Pods, Namespaces,
// Services, EndpointSlices and NetworkPolicies. All six informers are
// registered when the Source is made; add event handlers through Informers
// before Start.
type Source struct {
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory

	watcher *manifests.Watcher // nil when reading an API server, or once started
	log     *zap.Logger
	wg      sync.WaitGroup
}

// Live reads from an API server, through kubeconfig or, when it is empty,
// the in-cluster service account.
func Live(kubeconfig string, resync time.Duration) (*Source, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config (no kubeconfig given): %w", err)
		}
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
	}
	client, err := kubernetes.NewForConfig(rest.AddUserAgent(cfg, userAgent))
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", cfg.Host, err)
	}
	return newSource(client, resync), nil
}

// Manifests reads from the manifests in dir (see manifests.LoadDir). The
// folder is loaded before Manifests returns; Start watches it for changes.
// onError, if not nil, is called with each problem found in the manifests,
// on every load.
func Manifests(ctx context.Context, dir string, resync time.Duration, log *zap.Logger, onError func(error)) (*Source, error) {
	store := manifests.NewStore()
	w, err := manifests.NewWatcher(dir, store, log, onError)
	if err != nil {
		return nil, err
	}
	// Loaded before the informers list, so that their first sync holds the
	// folder's objects.
	if err := w.Reload(ctx); err != nil {
		w.Close()
		return nil, err
	}
	s := newSource(store.Client(), resync)
	s.watcher = w
	s.log = log
	if s.log == nil {
		s.log = zap.NewNop()
	}
	return s, nil
}

func newSource(client kubernetes.Interface, resync time.Duration) *Source {
	f := informers.NewSharedInformerFactory(client, resync)
	// Registered now, so that Start starts all six whichever accessors the
	// caller uses.
	f.Core().V1().Nodes().Informer()
	f.Core().V1().Pods().Informer()
	f.Core().V1().Namespaces().Informer()
	f.Core().V1().Services().Informer()
	f.Discovery().V1().EndpointSlices().Informer()
	f.Networking().V1().NetworkPolicies().Informer()
	return &Source{Client: client, Informers: f}
}

// Start starts the informers and, for a manifests folder, the watcher, and
// waits until the informers' caches have synced. They run until ctx is done;
// Shutdown then waits for them to stop. Call Start once, and Shutdown after
// it, from one goroutine.
func (s *Source) Start(ctx context.Context) error {
	s.Informers.Start(ctx.Done())
	for typ, ok := range s.Informers.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("informer cache for %v did not sync: %w", typ, context.Cause(ctx))
		}
	}
	if s.watcher != nil {
		w := s.watcher
		s.watcher = nil
		s.wg.Go(func() {
			// Run logs and reports what goes wrong while it runs, and returns
			// only when the folder watch itself is lost.
			if err := w.Run(ctx); err != nil {
				s.log.Error("manifests watcher stopped", zap.Error(err))
			}
		})
	}
	return nil
}

// Shutdown waits for the informers and the watcher to stop, after the
// context given to Start is done. It also releases a watcher that was never
// started.
func (s *Source) Shutdown() {
	if s.watcher != nil {
		s.watcher.Close()
		s.watcher = nil
	}
	s.wg.Wait()
	s.Informers.Shutdown()
}

// Nodes lists the cluster's Nodes.
func (s *Source) Nodes() corelisters.NodeLister { return s.Informers.Core().V1().Nodes().Lister() }

// Pods lists the cluster's Pods.
func (s *Source) Pods() corelisters.PodLister { return s.Informers.Core().V1().Pods().Lister() }

// Namespaces lists the cluster's Namespaces.
func (s *Source) Namespaces() corelisters.NamespaceLister {
	return s.Informers.Core().V1().Namespaces().Lister()
}

// Services lists the cluster's Services.
func (s *Source) Services() corelisters.ServiceLister {
	return s.Informers.Core().V1().Services().Lister()
}

// EndpointSlices lists the cluster's EndpointSlices.
func (s *Source) EndpointSlices() discoverylisters.EndpointSliceLister {
	return s.Informers.Discovery().V1().EndpointSlices().Lister()
}

// NetworkPolicies lists the cluster's NetworkPolicies.
func (s *Source) NetworkPolicies() networkinglisters.NetworkPolicyLister {
	return s.Informers.Networking().V1().NetworkPolicies().Lister()
}
