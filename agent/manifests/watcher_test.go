package manifests

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// writeAtomic replaces a file the way editors and ConfigMap volumes do, so
// that no reload reads it half written.
func writeAtomic(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func serviceYAML(name, port string) string {
	return lines(
		"apiVersion: v1",
		"kind: Service",
		"metadata: {name: "+name+"}",
		"spec: {ports: [{port: "+port+"}]}",
	)
}

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	writeAtomic(t, dir, "a.yaml", serviceYAML("a", "80"))

	s := NewStore()
	core, logs := observer.New(zap.DebugLevel)
	var mu sync.Mutex
	var reported []error
	onError := func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, dir, s, zap.New(core), onError) }()

	ports := func() map[string]int32 {
		list, err := s.Client().CoreV1().Services("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := make(map[string]int32)
		for _, svc := range list.Items {
			got[svc.Name] = svc.Spec.Ports[0].Port
		}
		return got
	}
	steps := []struct {
		name   string
		change func()
		want   map[string]int32
	}{
		{"initial load", func() {}, map[string]int32{"a": 80}},
		{"new file", func() { writeAtomic(t, dir, "b.yaml", serviceYAML("b", "80")) }, map[string]int32{"a": 80, "b": 80}},
		{"modified file", func() { writeAtomic(t, dir, "a.yaml", serviceYAML("a", "81")) }, map[string]int32{"a": 81, "b": 80}},
		{"deleted file", func() {
			if err := os.Remove(filepath.Join(dir, "b.yaml")); err != nil {
				t.Fatal(err)
			}
		}, map[string]int32{"a": 81}},
		{"a file that stops loading keeps its objects", func() {
			writeAtomic(t, dir, "a.yaml", lines(
				"apiVersion: v1",           // 1
				"kind: Service",            // 2
				"metadata: {name: a}",      // 3
				"spec: {ports: [{port: 82", // 4: unclosed
			))
			writeAtomic(t, dir, "c.yaml", serviceYAML("c", "80"))
		}, map[string]int32{"a": 81, "c": 80}},
		{"once it loads, what it no longer holds goes", func() {
			writeAtomic(t, dir, "a.yaml", serviceYAML("d", "80"))
		}, map[string]int32{"c": 80, "d": 80}},
	}
	for _, st := range steps {
		st.change()
		var got map[string]int32
		if !poll(func() bool { got = ports(); return maps.Equal(got, st.want) }) {
			t.Fatalf("%s: store holds %v, want %v", st.name, got, st.want)
		}
	}

	// The broken a.yaml was reported, to the callback and the log, with its
	// file and line, and nothing else was.
	wantFile := filepath.Join(dir, "a.yaml")
	mu.Lock()
	if len(reported) == 0 {
		t.Error("no error reported")
	}
	for _, err := range reported {
		var me *Error
		if !errors.As(err, &me) || me.File != wantFile || me.Line != 4 {
			t.Errorf("reported %v, want %s:4", err, wantFile)
		}
	}
	mu.Unlock()
	rejected := logs.FilterMessage("manifest rejected").All()
	if len(rejected) == 0 {
		t.Error("no error logged")
	}
	for _, e := range rejected {
		f := e.ContextMap()
		if f["file"] != wantFile || f["line"] != int64(4) {
			t.Errorf("logged %v, want file %s line 4", f, wantFile)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch returned %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}

func TestWatchMissingFolder(t *testing.T) {
	err := Watch(t.Context(), filepath.Join(t.TempDir(), "absent"), NewStore(), nil, nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Watch = %v, want a not-exist error", err)
	}
}
