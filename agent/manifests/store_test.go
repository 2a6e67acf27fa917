package manifests

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

func service(namespace, name string, port int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: port}}},
	}
}

// poll reports whether cond comes to hold before a deadline.
func poll(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// waitFor polls cond until it holds, or fails the test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll(cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

type counts struct{ adds, updates, deletes int }

// recorder counts the events a Service informer delivers.
type recorder struct {
	mu      sync.Mutex
	counts  counts
	updates []*corev1.Service // old, new of each update
}

func (r *recorder) get() counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts
}

// startServiceInformer runs a Service informer over the store until the test
// ends, and returns its event counts and lister once its watch is open.
func startServiceInformer(t *testing.T, s *Store) (*recorder, func() map[string]int32) {
	t.Helper()
	ctx := t.Context()
	factory := informers.NewSharedInformerFactory(s.Client(), 0)
	inf := factory.Core().V1().Services()
	r := &recorder{}
	_, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { r.mu.Lock(); r.counts.adds++; r.mu.Unlock() },
		UpdateFunc: func(o, n any) {
			r.mu.Lock()
			r.counts.updates++
			r.updates = append(r.updates, o.(*corev1.Service), n.(*corev1.Service))
			r.mu.Unlock()
		},
		DeleteFunc: func(any) { r.mu.Lock(); r.counts.deletes++; r.mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	t.Cleanup(factory.Shutdown) // runs after t.Context() is cancelled
	factory.WaitForCacheSync(ctx.Done())
	k, _ := kindOf(&corev1.Service{})
	waitFor(t, "the informer's watch", func() bool { return s.watching(k.gvr()) > 0 })
	ports := func() map[string]int32 {
		svcs, err := inf.Lister().List(labels.Everything())
		if err != nil {
			t.Fatal(err)
		}
		got := make(map[string]int32)
		for _, s := range svcs {
			got[s.Namespace+"/"+s.Name] = s.Spec.Ports[0].Port
		}
		return got
	}
	return r, ports
}

func TestStoreApplyEvents(t *testing.T) {
	s := NewStore()
	r, ports := startServiceInformer(t, s)

	// Counts are cumulative. A step that expects no event is followed by one
	// that expects a new event: events arrive in order, so an unwanted one
	// would be counted by then.
	steps := []struct {
		name      string
		objs      []runtime.Object
		want      counts
		wantPorts map[string]int32
	}{
		{
			name:      "create",
			objs:      []runtime.Object{service("", "a", 80), service("shop", "b", 80)},
			want:      counts{adds: 2},
			wantPorts: map[string]int32{"default/a": 80, "shop/b": 80},
		},
		{
			name:      "unchanged reload makes no event",
			objs:      []runtime.Object{service("default", "a", 80), service("shop", "b", 80)},
			want:      counts{adds: 2},
			wantPorts: map[string]int32{"default/a": 80, "shop/b": 80},
		},
		{
			name:      "add one",
			objs:      []runtime.Object{service("default", "a", 80), service("shop", "b", 80), service("shop", "c", 80)},
			want:      counts{adds: 3},
			wantPorts: map[string]int32{"default/a": 80, "shop/b": 80, "shop/c": 80},
		},
		{
			name:      "change one",
			objs:      []runtime.Object{service("default", "a", 80), service("shop", "b", 81), service("shop", "c", 80)},
			want:      counts{adds: 3, updates: 1},
			wantPorts: map[string]int32{"default/a": 80, "shop/b": 81, "shop/c": 80},
		},
		{
			name:      "remove one",
			objs:      []runtime.Object{service("shop", "b", 81), service("shop", "c", 80)},
			want:      counts{adds: 3, updates: 1, deletes: 1},
			wantPorts: map[string]int32{"shop/b": 81, "shop/c": 80},
		},
		{
			name:      "remove all",
			objs:      nil,
			want:      counts{adds: 3, updates: 1, deletes: 3},
			wantPorts: map[string]int32{},
		},
	}
	for _, st := range steps {
		if err := s.Apply(t.Context(), st.objs); err != nil {
			t.Fatalf("%s: Apply: %v", st.name, err)
		}
		var got counts
		if !poll(func() bool { got = r.get(); return got == st.want }) {
			t.Fatalf("%s: events %+v, want %+v", st.name, got, st.want)
		}
		if got := ports(); !maps.Equal(got, st.wantPorts) {
			t.Errorf("%s: lister holds %v, want %v", st.name, got, st.wantPorts)
		}
	}

	// An update is a new version of the same object, as from an API server.
	r.mu.Lock()
	defer r.mu.Unlock()
	old, cur := r.updates[0], r.updates[1]
	if old.ResourceVersion == cur.ResourceVersion || old.UID != cur.UID || old.UID == "" {
		t.Errorf("update from rv %q uid %q to rv %q uid %q: want a new rv and the same uid",
			old.ResourceVersion, old.UID, cur.ResourceVersion, cur.UID)
	}
}

func TestStoreApplyManyAtOnce(t *testing.T) {
	s := NewStore()
	r, _ := startServiceInformer(t, s)
	// More than a fake clientset watch buffers (100) before it panics.
	const n = 500
	var objs []runtime.Object
	for i := range n {
		objs = append(objs, service("default", fmt.Sprintf("s%d", i), 80))
	}
	if err := s.Apply(t.Context(), objs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "500 add events", func() bool { return r.get() == counts{adds: n} })
}

func TestStoreApplyRejects(t *testing.T) {
	tests := []struct {
		name string
		objs []runtime.Object
	}{
		{"kind the agent does not read", []runtime.Object{&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}}},
		{"no name", []runtime.Object{service("default", "", 80)}},
		{"same object twice", []runtime.Object{service("", "x", 80), service("default", "x", 81)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore()
			if err := s.Apply(t.Context(), []runtime.Object{service("default", "kept", 80)}); err != nil {
				t.Fatal(err)
			}
			objs := append([]runtime.Object{service("default", "new", 80)}, tt.objs...)
			if err := s.Apply(t.Context(), objs); err == nil {
				t.Fatal("Apply succeeded, want an error")
			}
			list, err := s.Client().CoreV1().Services("").List(t.Context(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(list.Items) != 1 || list.Items[0].Name != "kept" {
				t.Errorf("store holds %v, want only the service from before", list.Items)
			}
		})
	}
}

func TestStoreClientIsReadOnlyForAgentKinds(t *testing.T) {
	s := NewStore()
	if err := s.Apply(t.Context(), []runtime.Object{service("default", "web", 80)}); err != nil {
		t.Fatal(err)
	}
	svcs := s.Client().CoreV1().Services("default")
	tests := []struct {
		name          string
		call          func(context.Context) error
		wantForbidden bool
	}{
		{"get", func(ctx context.Context) error { _, err := svcs.Get(ctx, "web", metav1.GetOptions{}); return err }, false},
		{"create", func(ctx context.Context) error {
			_, err := svcs.Create(ctx, service("default", "other", 80), metav1.CreateOptions{})
			return err
		}, true},
		{"update", func(ctx context.Context) error {
			_, err := svcs.Update(ctx, service("default", "web", 81), metav1.UpdateOptions{})
			return err
		}, true},
		{"delete", func(ctx context.Context) error { return svcs.Delete(ctx, "web", metav1.DeleteOptions{}) }, true},
		{"other kinds are writable", func(ctx context.Context) error {
			_, err := s.Client().CoreV1().ConfigMaps("default").Create(ctx,
				&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{})
			return err
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(t.Context())
			if tt.wantForbidden != apierrors.IsForbidden(err) || !tt.wantForbidden && err != nil {
				t.Errorf("got %v, want forbidden: %v", err, tt.wantForbidden)
			}
		})
	}
}

// nextEvent reads one event or fails the test.
func nextEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev := <-w.ResultChan():
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event")
		return watch.Event{}
	}
}

func TestStoreWatchResourceVersion(t *testing.T) {
	tests := []struct {
		name string
		// rv picks the resourceVersion to watch from, given the list's.
		rv         func(listRV string) string
		wantFirst  []watch.EventType // before the next Apply
		wantStatus int32             // for an error event
	}{
		{"from the list: only what follows", func(rv string) string { return rv }, nil, 0},
		{"from nothing: the objects first", func(string) string { return "" }, []watch.EventType{watch.Added, watch.Added}, 0},
		{"from an older version: 410 Gone", func(string) string { return "1" }, []watch.EventType{watch.Error}, 410},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore()
			if err := s.Apply(t.Context(), []runtime.Object{service("default", "a", 80), service("default", "b", 80)}); err != nil {
				t.Fatal(err)
			}
			svcs := s.Client().CoreV1().Services("")
			list, err := svcs.List(t.Context(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			w, err := svcs.Watch(t.Context(), metav1.ListOptions{ResourceVersion: tt.rv(list.ResourceVersion)})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			for _, want := range tt.wantFirst {
				ev := nextEvent(t, w)
				if ev.Type != want {
					t.Fatalf("event %s, want %s", ev.Type, want)
				}
				if st, ok := ev.Object.(*metav1.Status); want == watch.Error && (!ok || st.Code != tt.wantStatus) {
					t.Fatalf("error event %+v, want status %d", ev.Object, tt.wantStatus)
				}
			}
			if tt.wantStatus != 0 {
				return
			}
			if err := s.Apply(t.Context(), []runtime.Object{service("default", "a", 80), service("default", "b", 80), service("default", "c", 80)}); err != nil {
				t.Fatal(err)
			}
			ev := nextEvent(t, w)
			if svc, ok := ev.Object.(*corev1.Service); ev.Type != watch.Added || !ok || svc.Name != "c" {
				t.Errorf("event %s %v, want Added for c", ev.Type, ev.Object)
			}
		})
	}
}
