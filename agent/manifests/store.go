package manifests

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// Store serves a set of objects through an in-process clientset, so that
// client-go informers run over it as they would over an API server: lists
// carry a resourceVersion, watches resume from it, and every change Apply
// makes is one add, update or delete event.
//
// The six kinds the agent reads are read-only through Client(); Apply is
// their only writer.
type Store struct {
	client *fake.Clientset

	mu      sync.Mutex
	rev     uint64 // resourceVersion of the last change
	objects map[objKey]*entry
	feeds   map[schema.GroupVersionResource]map[*feed]struct{}
}

// entry is one object the store holds.
type entry struct {
	kind    kind
	desired runtime.Object // as given to Apply, to tell whether it changed
	stored  runtime.Object // as served: with resourceVersion, uid and creation time
}

// NewStore returns an empty store.
func NewStore() *Store {
	s := &Store{
		rev:     1,
		objects: make(map[objKey]*entry),
		feeds:   make(map[schema.GroupVersionResource]map[*feed]struct{}),
	}
	// NewSimpleClientset rather than NewClientset: it keeps objects as given,
	// without the managed fields and structured-merge checks of NewClientset's
	// tracker. Its own watches are not used: they drop events that happen
	// between an informer's list and its watch, and panic when 100 events
	// queue up unread (watch.RaceFreeFakeWatcher).
	cs := fake.NewSimpleClientset()
	for _, k := range kinds() {
		cs.PrependReactor("*", k.resource, s.react)
	}
	cs.PrependWatchReactor("*", s.watch)
	s.client = cs
	return s
}

// Client returns the clientset serving the store's objects.
func (s *Store) Client() kubernetes.Interface { return s.client }

// Apply makes the store hold exactly objs: it creates the new ones, updates
// the changed ones and deletes the ones not in objs. An object equal to what
// the store already holds causes no event. Objects of other kinds, without a
// name, or given twice are an error, and then nothing changes.
func (s *Store) Apply(ctx context.Context, objs []runtime.Object) error {
	_, err := s.apply(ctx, objs)
	return err
}

// changes counts what one Apply did.
type changes struct {
	created, updated, deleted int
}

func (s *Store) apply(ctx context.Context, objs []runtime.Object) (changes, error) {
	var ch changes
	want := make(map[objKey]runtime.Object, len(objs))
	order := make([]objKey, 0, len(objs))
	for i, obj := range objs {
		key, obj, err := normalize(obj)
		if err != nil {
			return ch, fmt.Errorf("apply object %d: %w", i, err)
		}
		if _, dup := want[key]; dup {
			return ch, fmt.Errorf("apply object %d: %s given twice", i, key)
		}
		want[key] = obj
		order = append(order, key)
	}
	if err := ctx.Err(); err != nil {
		return ch, err
	}
	// The fake clientset records every call it serves; only informers and the
	// odd Get use it, so forgetting them on each Apply bounds the memory.
	defer s.client.ClearActions()

	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, key := range order {
		obj := want[key]
		prev, ok := s.objects[key]
		switch {
		case !ok:
			k, _ := kindOf(obj)
			e := &entry{kind: k, desired: obj, stored: s.stamp(obj, nil)}
			if err := s.client.Tracker().Create(k.gvr(), e.stored, key.namespace); err != nil {
				errs = append(errs, fmt.Errorf("create %s: %w", key, err))
				continue
			}
			s.objects[key] = e
			s.broadcast(k.gvr(), key.namespace, watch.Added, e.stored)
			ch.created++
		case !equality.Semantic.DeepEqual(prev.desired, obj):
			stored := s.stamp(obj, prev.stored)
			if err := s.client.Tracker().Update(prev.kind.gvr(), stored, key.namespace); err != nil {
				errs = append(errs, fmt.Errorf("update %s: %w", key, err))
				continue
			}
			prev.desired, prev.stored = obj, stored
			s.broadcast(prev.kind.gvr(), key.namespace, watch.Modified, stored)
			ch.updated++
		}
	}
	var gone []objKey
	for key := range s.objects {
		if _, ok := want[key]; !ok {
			gone = append(gone, key)
		}
	}
	slices.SortFunc(gone, compareKeys)
	for _, key := range gone {
		e := s.objects[key]
		if err := s.client.Tracker().Delete(e.kind.gvr(), key.namespace, key.name); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", key, err))
			continue
		}
		delete(s.objects, key)
		// The API server stamps a delete event with the revision of the
		// deletion; informers resume their watch from it.
		last := e.stored.DeepCopyObject()
		s.rev++
		mustAccessor(last).SetResourceVersion(strconv.FormatUint(s.rev, 10))
		s.broadcast(e.kind.gvr(), key.namespace, watch.Deleted, last)
		ch.deleted++
	}
	return ch, errors.Join(errs...)
}

// normalize checks an object given to Apply and returns its key and a copy
// with the namespace set as the API server would: "default" for namespaced
// kinds, none for cluster-scoped ones.
func normalize(obj runtime.Object) (objKey, runtime.Object, error) {
	k, ok := kindOf(obj)
	if !ok {
		return objKey{}, nil, fmt.Errorf("%T is not a kind the agent reads", obj)
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return objKey{}, nil, fmt.Errorf("%s: %w", k.gvk.Kind, err)
	}
	key := objKey{gk: k.gvk.GroupKind(), name: m.GetName()}
	if k.namespaced {
		key.namespace = cmp.Or(m.GetNamespace(), metav1.NamespaceDefault)
	}
	if key.name == "" {
		return objKey{}, nil, fmt.Errorf("%s: metadata.name: required", k.gvk.Kind)
	}
	if m.GetNamespace() != key.namespace {
		obj = obj.DeepCopyObject()
		mustAccessor(obj).SetNamespace(key.namespace)
	}
	return key, obj, nil
}

// stamp returns the object as the store serves it: a copy with a new
// resourceVersion, keeping the uid and creation time of prev when there is
// one. Like objects read from an API server, it carries no apiVersion or kind.
func (s *Store) stamp(obj, prev runtime.Object) runtime.Object {
	out := obj.DeepCopyObject()
	out.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	m := mustAccessor(out)
	s.rev++
	m.SetResourceVersion(strconv.FormatUint(s.rev, 10))
	var pm metav1.Object
	if prev != nil {
		pm = mustAccessor(prev)
	}
	if m.GetUID() == "" {
		if pm != nil {
			m.SetUID(pm.GetUID())
		} else {
			m.SetUID(uuid.NewUUID())
		}
	}
	if ts := m.GetCreationTimestamp(); ts.IsZero() {
		if pm != nil {
			m.SetCreationTimestamp(pm.GetCreationTimestamp())
		} else {
			m.SetCreationTimestamp(metav1.NewTime(time.Now().Truncate(time.Second)))
		}
	}
	return out
}

// mustAccessor returns the metadata of an object of a kind in kinds(), which
// all have it.
func mustAccessor(obj runtime.Object) metav1.Object {
	m, err := meta.Accessor(obj)
	if err != nil {
		panic(fmt.Sprintf("manifests: %T has no metadata: %v", obj, err))
	}
	return m
}

func compareKeys(a, b objKey) int {
	return cmp.Or(
		cmp.Compare(a.gk.Group, b.gk.Group),
		cmp.Compare(a.gk.Kind, b.gk.Kind),
		cmp.Compare(a.namespace, b.namespace),
		cmp.Compare(a.name, b.name),
	)
}

// react serves the calls other than watch for the store's kinds: get from
// the tracker, list with the store's resourceVersion, and writes refused.
func (s *Store) react(action k8stesting.Action) (bool, runtime.Object, error) {
	k, ok := kindByGVR(action.GetResource())
	if !ok {
		return false, nil, nil
	}
	switch action.GetVerb() {
	case "get":
		return false, nil, nil // the tracker's reactor serves it
	case "list":
		s.mu.Lock()
		defer s.mu.Unlock()
		list, err := s.client.Tracker().List(k.gvr(), k.gvk, action.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		lm, err := meta.ListAccessor(list)
		if err != nil {
			return true, nil, err
		}
		lm.SetResourceVersion(strconv.FormatUint(s.rev, 10))
		return true, list, nil
	}
	var name string
	if a, ok := action.(interface{ GetName() string }); ok {
		name = a.GetName()
	}
	return true, nil, apierrors.NewForbidden(k.gvr().GroupResource(), name,
		fmt.Errorf("in standalone mode %s come from the manifests folder; %s is not allowed", k.resource, action.GetVerb()))
}

// watch opens a feed of the store's changes. As on an API server, a watch
// from the resourceVersion of a list misses nothing, one from "" or "0"
// starts with an add event per object, and one from an older
// resourceVersion ends at once with 410 Gone, so the informer lists again.
func (s *Store) watch(action k8stesting.Action) (bool, watch.Interface, error) {
	gvr := action.GetResource()
	k, ok := kindByGVR(gvr)
	if !ok {
		return false, nil, nil
	}
	var rv string
	if wa, ok := action.(k8stesting.WatchAction); ok {
		rv = wa.GetWatchRestrictions().ResourceVersion
	}
	ns := action.GetNamespace()

	s.mu.Lock()
	defer s.mu.Unlock()
	f := newFeed(s, gvr, ns)
	switch rv {
	case "", "0":
		var keys []objKey
		for key, e := range s.objects {
			if e.kind.gvr() == gvr && (ns == "" || ns == key.namespace) {
				keys = append(keys, key)
			}
		}
		slices.SortFunc(keys, compareKeys)
		for _, key := range keys {
			f.push(watch.Event{Type: watch.Added, Object: s.objects[key].stored.DeepCopyObject()})
		}
	default:
		n, err := strconv.ParseUint(rv, 10, 64)
		if err != nil {
			return true, nil, apierrors.NewBadRequest(fmt.Sprintf("watch %s: resourceVersion %q is not a number", k.resource, rv))
		}
		if n != s.rev {
			gone := apierrors.NewResourceExpired(fmt.Sprintf("watch %s: resourceVersion %d is not the current %d", k.resource, n, s.rev))
			f.push(watch.Event{Type: watch.Error, Object: &gone.ErrStatus})
			go f.run()
			return true, f, nil
		}
	}
	if s.feeds[gvr] == nil {
		s.feeds[gvr] = make(map[*feed]struct{})
	}
	s.feeds[gvr][f] = struct{}{}
	go f.run()
	return true, f, nil
}

// broadcast sends an event to the feeds watching the object. The caller
// holds s.mu.
func (s *Store) broadcast(gvr schema.GroupVersionResource, namespace string, t watch.EventType, obj runtime.Object) {
	for f := range s.feeds[gvr] {
		if f.namespace == "" || f.namespace == namespace {
			f.push(watch.Event{Type: t, Object: obj.DeepCopyObject()})
		}
	}
}

func (s *Store) forget(f *feed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.feeds[f.gvr], f)
}

// watching counts the open feeds for a resource; tests use it to know an
// informer's watch is in place.
func (s *Store) watching(gvr schema.GroupVersionResource) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.feeds[gvr])
}
