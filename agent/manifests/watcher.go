package manifests

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/runtime"
)

// debounce is how long the folder must stay quiet before a reload, so that
// an editor's save or a ConfigMap update is read once, complete.
const debounce = 200 * time.Millisecond

// Watcher keeps a Store in step with a folder of manifests.
type Watcher struct {
	dir     string
	store   *Store
	log     *zap.Logger
	onError func(error)
	events  *fsnotify.Watcher

	// last is what the previous reload applied, to keep the objects of a
	// file that stops loading.
	last []loaded
}

// NewWatcher starts watching dir for changes; Reload and Run act on them.
// onError, if not nil, is called with each problem found in the manifests
// on every reload (an *Error for a problem in a file), for metrics.
func NewWatcher(dir string, store *Store, log *zap.Logger, onError func(error)) (*Watcher, error) {
	if log == nil {
		log = zap.NewNop()
	}
	dir = filepath.Clean(dir) // fsnotify names the folder's own events by this path
	events, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch manifests folder %s: %w", dir, err)
	}
	if err := events.Add(dir); err != nil {
		events.Close()
		return nil, fmt.Errorf("watch manifests folder %s: %w", dir, err)
	}
	return &Watcher{dir: dir, store: store, log: log, onError: onError, events: events}, nil
}

// Watch loads dir into store and keeps it in step until ctx is done.
func Watch(ctx context.Context, dir string, store *Store, log *zap.Logger, onError func(error)) error {
	w, err := NewWatcher(dir, store, log, onError)
	if err != nil {
		return err
	}
	if err := w.Reload(ctx); err != nil {
		w.Close()
		return err
	}
	return w.Run(ctx)
}

// Reload reads the folder and applies it to the store. Problems in the files
// are logged and reported to onError, and the rest loads; objects that came
// from a file that now has problems are kept until it loads again, so a
// half-written file does not take them out of the dataplane. The error is
// for a folder that cannot be read, and then the store is left as it was.
func (w *Watcher) Reload(ctx context.Context) error {
	r, err := load(w.dir)
	if err != nil {
		return err
	}
	for _, s := range r.skipped {
		w.log.Debug("skipping manifest of a kind the agent does not read",
			zap.String("file", s.at.file), zap.Int("line", s.at.line),
			zap.String("apiVersion", s.apiVersion), zap.String("kind", s.kind))
	}
	failing := make(map[string]bool)
	for _, err := range r.errs {
		w.report(err)
		if me := (*Error)(nil); errors.As(err, &me) {
			failing[me.File] = true
		}
	}
	objs := r.objs
	kept := 0
	if len(failing) > 0 {
		have := make(map[objKey]bool, len(objs))
		for _, o := range objs {
			have[o.key] = true
		}
		for _, o := range w.last {
			if failing[o.at.file] && !have[o.key] {
				objs = append(objs, o)
				kept++
			}
		}
	}
	list := make([]runtime.Object, len(objs))
	for i, o := range objs {
		list[i] = o.obj
	}
	ch, err := w.store.apply(ctx, list)
	if err != nil {
		return fmt.Errorf("apply manifests from %s: %w", w.dir, err)
	}
	w.last = objs
	log := w.log.Debug
	if ch != (changes{}) {
		log = w.log.Info
	}
	log("manifests loaded", zap.String("dir", w.dir), zap.Int("objects", len(objs)),
		zap.Int("created", ch.created), zap.Int("updated", ch.updated), zap.Int("deleted", ch.deleted),
		zap.Int("errors", len(r.errs)), zap.Int("keptFromFailingFiles", kept))
	return nil
}

func (w *Watcher) report(err error) {
	if me := (*Error)(nil); errors.As(err, &me) {
		w.log.Error("manifest rejected", zap.String("file", me.File), zap.Int("line", me.Line), zap.Error(me.Err))
	} else {
		w.log.Error("manifests", zap.Error(err))
	}
	if w.onError != nil {
		w.onError(err)
	}
}

// Run reloads the folder after each burst of changes until ctx is done, and
// closes the watcher before it returns.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.Close()
	timer := time.NewTimer(debounce)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.events.Events:
			if !ok {
				return fmt.Errorf("watch manifests folder %s: closed", w.dir)
			}
			w.log.Debug("manifests folder changed", zap.String("file", ev.Name), zap.Stringer("op", ev.Op))
			if ev.Name == w.dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				w.log.Warn("manifests folder removed; keeping the objects loaded from it", zap.String("dir", w.dir))
			}
			timer.Reset(debounce)
		case err, ok := <-w.events.Errors:
			if !ok {
				return fmt.Errorf("watch manifests folder %s: closed", w.dir)
			}
			// Such as an overflow of the inotify queue: changes may have been
			// missed, so read the folder again.
			w.log.Warn("watching manifests folder", zap.String("dir", w.dir), zap.Error(err))
			timer.Reset(debounce)
		case <-timer.C:
			if err := w.Reload(ctx); err != nil {
				w.report(err)
			}
		}
	}
}

// Close stops watching the folder. Run calls it; call it yourself only when
// Run is not called.
func (w *Watcher) Close() error {
	return w.events.Close()
}
