package manifests

import (
	"sync"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
)

// feed is one watch on a Store. Events queue without bound, so that Apply
// never waits for a slow informer; the feed's goroutine hands them on until
// Stop, as every informer does when it ends its watch.
type feed struct {
	store     *Store
	gvr       schema.GroupVersionResource
	namespace string // "" for all namespaces

	out  chan watch.Event
	wake chan struct{}
	stop chan struct{}
	once sync.Once

	mu    sync.Mutex
	queue []watch.Event
}

var _ watch.Interface = (*feed)(nil)

func newFeed(s *Store, gvr schema.GroupVersionResource, namespace string) *feed {
	return &feed{
		store:     s,
		gvr:       gvr,
		namespace: namespace,
		out:       make(chan watch.Event),
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
}

func (f *feed) ResultChan() <-chan watch.Event { return f.out }

// Stop ends the feed and closes its result channel.
func (f *feed) Stop() {
	f.once.Do(func() {
		close(f.stop)
		f.store.forget(f)
	})
}

func (f *feed) push(ev watch.Event) {
	f.mu.Lock()
	f.queue = append(f.queue, ev)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

func (f *feed) run() {
	defer close(f.out)
	for {
		f.mu.Lock()
		batch := f.queue
		f.queue = nil
		f.mu.Unlock()
		for _, ev := range batch {
			select {
			case f.out <- ev:
			case <-f.stop:
				return
			}
		}
		select {
		case <-f.wake:
		case <-f.stop:
			return
		}
	}
}
