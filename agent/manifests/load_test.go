package manifests

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
)

// lines joins one string per line, so that a test can count line numbers.
func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

// writeFiles writes name -> content into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// describe names an object as "Kind namespace/name" or "Kind name".
func describe(t *testing.T, obj runtime.Object) string {
	t.Helper()
	k, ok := kindOf(obj)
	if !ok {
		t.Fatalf("unexpected %T", obj)
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		t.Fatal(err)
	}
	return objKey{gk: k.gvk.GroupKind(), namespace: m.GetNamespace(), name: m.GetName()}.String()
}

type wantErr struct {
	file   string
	line   int
	reason string // a part of the reason
}

func TestLoadDir(t *testing.T) {
	validService := lines(
		"apiVersion: v1", // 1
		"kind: Service",  // 2
		"metadata:",      // 3
		"  name: web",    // 4
		"spec:",          // 5
		"  ports:",       // 6
		"  - port: 80",   // 7
	)
	tests := []struct {
		name     string
		files    map[string]string
		wantObjs []string
		wantErrs []wantErr
	}{
		{
			name: "all six kinds in one file, namespaces defaulted and cleared",
			files: map[string]string{"all.yaml": lines(
				"apiVersion: v1",
				"kind: Namespace",
				"metadata:",
				"  name: shop",
				"---",
				"apiVersion: v1",
				"kind: Node",
				"metadata:",
				"  name: node-1",
				"  namespace: shop # cluster-scoped: dropped, as the API server does",
				"---",
				"apiVersion: v1",
				"kind: Pod",
				"metadata:",
				"  name: web-0",
				"spec:",
				"  containers: [{name: c, image: nginx}]",
				"---",
				"apiVersion: v1",
				"kind: Service",
				"metadata: {name: web, namespace: shop}",
				"spec: {ports: [{port: 80}]}",
				"--- # a comment after the separator",
				"apiVersion: discovery.k8s.io/v1",
				"kind: EndpointSlice",
				"metadata: {name: web-abc, namespace: shop}",
				"addressType: IPv4",
				"endpoints: [{addresses: [10.0.0.1]}]",
				"---",
				"---",
				"apiVersion: networking.k8s.io/v1",
				"kind: NetworkPolicy",
				"metadata: {name: deny, namespace: shop}",
				"spec: {podSelector: {}}",
			)},
			wantObjs: []string{"Namespace shop", "Node node-1", "Pod default/web-0", "Service shop/web",
				"EndpointSlice shop/web-abc", "NetworkPolicy shop/deny"},
		},
		{
			name: "a broken document in the middle of a file",
			files: map[string]string{
				"a.yaml": lines(
					"apiVersion: v1",          // 1
					"kind: Service",           // 2
					"metadata: {name: one}",   // 3
					"---",                     // 4
					"",                        // 5
					"apiVersion: v1",          // 6: first line of the broken document
					"kind: Service",           // 7
					"metadata: {name: two}",   // 8
					"spec: {prots: []}",       // 9: unknown field
					"---",                     // 10
					"apiVersion: v1",          // 11
					"kind: Service",           // 12
					"metadata: {name: three}", // 13
				),
				"b.yaml": validService,
			},
			wantObjs: []string{"Service default/one", "Service default/three", "Service default/web"},
			wantErrs: []wantErr{{"a.yaml", 6, `unknown field "spec.prots"`}},
		},
		{
			name: "YAML scanner error: the line of the error in the file",
			files: map[string]string{"a.yaml": lines(
				"apiVersion: v1",         // 1
				"kind: Service",          // 2
				"metadata: {name: one}",  // 3
				"---",                    // 4
				"apiVersion: v1",         // 5
				"kind: Service",          // 6
				"metadata:",              // 7
				"  name: two: three",     // 8: a mapping value where none may be
				"---",                    // 9
				"apiVersion: v1",         // 10
				"kind: Service",          // 11
				"metadata: {name: four}", // 12
			)},
			wantObjs: []string{"Service default/one", "Service default/four"},
			wantErrs: []wantErr{{"a.yaml", 8, "mapping values are not allowed"}},
		},
		{
			name: "YAML parser error: the line of the offending key",
			files: map[string]string{"a.yaml": lines(
				"# leading comment", // 1
				"---",               // 2
				"apiVersion: v1",    // 3
				"kind: Service",     // 4
				"metadata:",         // 5
				"  name: two",       // 6
				" labels: {a: b}",   // 7: indented less than name, more than metadata
				"spec: {}",          // 8
			)},
			wantErrs: []wantErr{{"a.yaml", 7, "did not find expected key"}},
		},
		{
			name: "duplicate key in a mapping",
			files: map[string]string{"a.yaml": lines(
				"apiVersion: v1",        // 1
				"kind: Service",         // 2
				"metadata: {name: one}", // 3
				"kind: Pod",             // 4
			)},
			wantErrs: []wantErr{{"a.yaml", 4, `key "kind" already set`}},
		},
		{
			name: "missing name, reported at the first line that is not a comment",
			files: map[string]string{"a.yaml": lines(
				"apiVersion: v1",             // 1
				"kind: Service",              // 2
				"metadata: {name: one}",      // 3
				"---",                        // 4
				"# a service without a name", // 5
				"apiVersion: v1",             // 6
				"kind: Service",              // 7
				"metadata:",                  // 8
				"  namespace: shop",          // 9
			)},
			wantObjs: []string{"Service default/one"},
			wantErrs: []wantErr{{"a.yaml", 6, "Service: metadata.name: required"}},
		},
		{
			name: "invalid names",
			files: map[string]string{"a.yaml": lines(
				"apiVersion: v1",                         // 1
				"kind: Service",                          // 2
				"metadata: {name: 1web}",                 // 3: a Service name is a DNS-1035 label
				"---",                                    // 4
				"apiVersion: v1",                         // 5
				"kind: Pod",                              // 6
				"metadata: {name: web, namespace: Shop}", // 7
			)},
			wantErrs: []wantErr{{"a.yaml", 1, `metadata.name "1web"`}, {"a.yaml", 5, `metadata.namespace "Shop"`}},
		},
		{
			name: "other kinds are skipped, a known kind in another version is an error",
			files: map[string]string{"a.yaml": lines(
				"apiVersion: v1",                       // 1
				"kind: ConfigMap",                      // 2
				"metadata: {name: cfg}",                // 3
				"---",                                  // 4
				"apiVersion: example.com/v1",           // 5
				"kind: Widget",                         // 6
				"metadata: {name: w}",                  // 7
				"---",                                  // 8
				"apiVersion: discovery.k8s.io/v1beta1", // 9
				"kind: EndpointSlice",                  // 10
				"metadata: {name: old}",                // 11
				"---",                                  // 12
				"kind: Service",                        // 13
				"metadata: {name: noversion}",          // 14
				"---",                                  // 15
				"apiVersion: v1",                       // 16
				"metadata: {name: nokind}",             // 17
				"---",                                  // 18
				"- just",                               // 19
				"- a list",                             // 20
			)},
			wantErrs: []wantErr{
				{"a.yaml", 9, `use "discovery.k8s.io/v1"`},
				{"a.yaml", 13, "apiVersion: required"},
				{"a.yaml", 16, "kind: required"},
				{"a.yaml", 19, "not a Kubernetes object"},
			},
		},
		{
			name: "duplicates across files: the first wins",
			files: map[string]string{
				"a.yaml": validService,
				"b.yaml": lines(
					"apiVersion: v1",        // 1
					"kind: Pod",             // 2
					"metadata: {name: web}", // 3: same name, other kind: not a duplicate
					"---",                   // 4
					"apiVersion: v1",        // 5
					"kind: Service",         // 6
					"metadata:",             // 7
					"  name: web",           // 8
					"  namespace: default",  // 9
				),
			},
			wantObjs: []string{"Service default/web", "Pod default/web"},
			wantErrs: []wantErr{{"b.yaml", 5, "duplicate Service default/web, first defined at "}},
		},
		{
			name: "List kind, and JSON",
			files: map[string]string{
				"list.yaml": lines(
					"apiVersion: v1",   // 1
					"kind: List",       // 2
					"items:",           // 3
					"- apiVersion: v1", // 4
					"  kind: Pod",      // 5
					"  metadata: {name: p1}",
					"- apiVersion: v1",
					"  kind: ConfigMap",
					"  metadata: {name: skipped}",
					"- apiVersion: v1",
					"  kind: Service",
					"  metadata: {namespace: shop}",
					"- apiVersion: v1",
					"  kind: Service",
					"  metadata: {name: s1, namespace: shop}",
				),
				"node.json": lines(
					`{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}`, // 1
					``,                                     // 2
					`{"apiVersion": "v1", "kind": "Node",`, // 3: a stream of values, as kubectl reads
					` "metadata": {"name": "n3"}}`,         // 4
					`  {"apiVersion": "v1", "kind": "Node", "metadata": {}}`, // 5
				),
				"broken.json": lines(
					`{"apiVersion": "v1",`,          // 1
					`  "kind": "Node"`,              // 2: no comma
					`  "metadata": {"name": "n2"}}`, // 3: where the parser finds out
				),
			},
			wantObjs: []string{"Pod default/p1", "Service shop/s1", "Node n1", "Node n3"},
			// Files load in name order.
			wantErrs: []wantErr{{"broken.json", 3, "invalid JSON"}, {"list.yaml", 1, "items[2]: Service: metadata.name: required"},
				{"node.json", 5, "Node: metadata.name: required"}},
		},
		{
			name: "hidden files, editor files and other extensions are ignored",
			files: map[string]string{
				".hidden.yaml": "not: [valid",
				"a.yaml~":      "not: [valid",
				"#a.yaml#":     "not: [valid",
				".a.yaml.swp":  "not: [valid",
				"notes.txt":    "not: [valid",
				"svc.YML":      validService,
				"empty.yaml":   "# nothing here\n---\n\n---\n",
			},
			wantObjs: []string{"Service default/web"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			objs, errs := LoadDir(dir)

			var got []string
			for _, o := range objs {
				got = append(got, describe(t, o))
			}
			if !slices.Equal(got, tt.wantObjs) {
				t.Errorf("objects:\n got %q\nwant %q", got, tt.wantObjs)
			}
			if len(errs) != len(tt.wantErrs) {
				t.Fatalf("got %d errors, want %d: %v", len(errs), len(tt.wantErrs), errs)
			}
			for i, err := range errs {
				var me *Error
				if !errors.As(err, &me) {
					t.Fatalf("error %d is %T, want *Error: %v", i, err, err)
				}
				w := tt.wantErrs[i]
				if me.File != filepath.Join(dir, w.file) || me.Line != w.line || !strings.Contains(me.Err.Error(), w.reason) {
					t.Errorf("error %d = %v, want %s:%d: ...%s...", i, err, w.file, w.line, w.reason)
				}
			}
		})
	}
}

func TestLoadDirDecodesTypedObjects(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"pod.yaml": lines(
		"apiVersion: v1",
		"kind: Pod",
		"metadata: {name: web-0, labels: {app: web}}",
		"spec: {nodeName: node-1}",
		"status: {podIP: 10.1.0.5}",
	)})
	objs, errs := LoadDir(dir)
	if len(errs) != 0 || len(objs) != 1 {
		t.Fatalf("got %v, %v", objs, errs)
	}
	pod, ok := objs[0].(*corev1.Pod)
	if !ok {
		t.Fatalf("got %T, want *v1.Pod", objs[0])
	}
	if pod.Namespace != "default" || pod.Labels["app"] != "web" || pod.Spec.NodeName != "node-1" || pod.Status.PodIP != "10.1.0.5" {
		t.Errorf("pod decoded as %+v", pod)
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{File: "examples/bad.yaml", Line: 14, Err: errors.New("kind: required")}, "examples/bad.yaml:14: kind: required"},
		{&Error{File: "examples/bad.yaml", Err: errors.New("open: permission denied")}, "examples/bad.yaml: open: permission denied"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestLoadDirMissingFolder(t *testing.T) {
	objs, errs := LoadDir(filepath.Join(t.TempDir(), "absent"))
	if len(objs) != 0 || len(errs) != 1 || !errors.Is(errs[0], os.ErrNotExist) {
		t.Errorf("got %v, %v; want one not-exist error", objs, errs)
	}
}
