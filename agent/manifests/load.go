// Package manifests loads the agent's Kubernetes objects from a folder of
// manifest files and serves them through an in-process clientset, so that the
// same informers run in standalone mode as against an API server.
package manifests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// Error is a problem with one document of a manifest file.
type Error struct {
	File string // path of the file, as found under the folder
	Line int    // 1-based line in the file; 0 when the whole file is concerned
	Err  error
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// objKey identifies an object the way the API server does.
type objKey struct {
	gk        schema.GroupKind
	namespace string
	name      string
}

func (k objKey) String() string {
	if k.namespace == "" {
		return k.gk.Kind + " " + k.name
	}
	return k.gk.Kind + " " + k.namespace + "/" + k.name
}

// location is where an object was defined.
type location struct {
	file string
	line int
}

func (l location) String() string { return l.file + ":" + strconv.Itoa(l.line) }

// loaded is one object read from the folder and where it came from.
type loaded struct {
	obj runtime.Object
	key objKey
	at  location
}

// skippedDoc is a document of a kind the agent does not read.
type skippedDoc struct {
	at         location
	apiVersion string
	kind       string
}

// loadResult is everything one pass over the folder found.
type loadResult struct {
	objs    []loaded
	errs    []error
	skipped []skippedDoc
}

// LoadDir reads the manifests in dir: *.yaml, *.yml and *.json files, not
// recursively, in file name order. It returns the Nodes, Pods, Namespaces,
// Services, EndpointSlices and NetworkPolicies found, in file and position
// order, and an *Error for each document that could not be used; the other
// documents still load. Documents of other kinds are skipped without error.
func LoadDir(dir string) (objs []runtime.Object, errs []error) {
	r, err := load(dir)
	if err != nil {
		return nil, []error{err}
	}
	for _, o := range r.objs {
		objs = append(objs, o.obj)
	}
	return objs, r.errs
}

// load reads the folder; its error is for a folder that cannot be read.
func load(dir string) (loadResult, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return loadResult{}, fmt.Errorf("read manifests folder: %w", err)
	}
	l := loader{
		// Strict, as kubectl's default field validation is: a misspelt field in
		// a NetworkPolicy must not silently widen what it allows.
		codec: kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
			kjson.SerializerOptions{Strict: true}),
		seen: make(map[objKey]location),
	}
	for _, e := range entries {
		if !isManifestName(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		// Stat, not the directory entry: ConfigMap volumes present every file
		// as a symlink into a hidden, atomically swapped folder.
		info, err := os.Stat(path)
		if err != nil {
			l.res.errs = append(l.res.errs, &Error{File: path, Err: pathErr(err)})
			continue
		}
		if !info.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			l.res.errs = append(l.res.errs, &Error{File: path, Err: pathErr(err)})
			continue
		}
		l.file(path, data)
	}
	return l.res, nil
}

// isManifestName tells manifest files from hidden files, editor backups and
// lock files, and anything else in the folder.
func isManifestName(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "#") || strings.HasPrefix(name, "~") {
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// pathErr drops the path from an os error; Error already names the file.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

type loader struct {
	codec runtime.Decoder
	seen  map[objKey]location
	res   loadResult
}

func (l *loader) fail(file string, line int, err error) {
	l.res.errs = append(l.res.errs, &Error{File: file, Line: line, Err: err})
}

// document is one YAML document of a file.
type document struct {
	text  []byte
	start int // file line of the document's first line
	first int // file line of its first line that is neither blank nor a comment; 0 if none
	last  int // file line of its last such line
}

var utf8BOM = []byte("\xef\xbb\xbf")

func (l *loader) file(path string, data []byte) {
	data = bytes.TrimPrefix(data, utf8BOM)
	if strings.EqualFold(filepath.Ext(path), ".json") {
		l.jsonFile(path, data)
		return
	}
	for _, d := range splitDocuments(data) {
		l.document(path, d)
	}
}

// jsonFile reads a stream of JSON values, as kubectl accepts. A syntax error
// ends the file, since nothing after it can be trusted to start a value.
func (l *loader) jsonFile(path string, data []byte) {
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		start := dec.InputOffset()
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			return
		}
		if err != nil {
			off := dec.InputOffset()
			if se := (*json.SyntaxError)(nil); errors.As(err, &se) {
				off = se.Offset - 1 // the offending byte
			}
			l.fail(path, lineAt(data, off), fmt.Errorf("invalid JSON: %w", err))
			return
		}
		// Skip the whitespace before the value to name the line it starts on.
		start += int64(len(data[start:]) - len(bytes.TrimLeft(data[start:], " \t\r\n")))
		l.value(path, lineAt(data, start), raw)
	}
}

// lineAt is the 1-based line of the byte at off, or of the last byte that is
// not white space when off is past it.
func lineAt(data []byte, off int64) int {
	end := int64(len(bytes.TrimRight(data, " \t\r\n")))
	off = max(0, min(off, end-1))
	return 1 + bytes.Count(data[:off], []byte("\n"))
}

// splitDocuments splits a file on "---" lines, keeping each document's place
// in the file so that errors can name file lines. Empty documents are dropped.
func splitDocuments(data []byte) []document {
	var docs []document
	cur := document{start: 1}
	for i, ln := range bytes.SplitAfter(data, []byte("\n")) {
		n := i + 1
		if isSeparator(ln) {
			docs = append(docs, cur)
			cur = document{start: n + 1}
			continue
		}
		cur.text = append(cur.text, ln...)
		if t := bytes.TrimSpace(ln); len(t) > 0 && t[0] != '#' {
			if cur.first == 0 {
				cur.first = n
			}
			cur.last = n
		}
	}
	docs = append(docs, cur)
	kept := docs[:0]
	for _, d := range docs {
		if d.first != 0 {
			kept = append(kept, d)
		}
	}
	return kept
}

func isSeparator(line []byte) bool {
	s := strings.TrimRight(string(line), " \t\r\n")
	if !strings.HasPrefix(s, "---") {
		return false
	}
	rest := s[3:]
	return rest == "" || (rest[0] == ' ' || rest[0] == '\t') && strings.TrimSpace(rest)[0] == '#'
}

// header is the part of a document read before choosing how to decode it.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Items []json.RawMessage `json:"items"`
}

func (l *loader) document(path string, d document) {
	data, err := yaml.YAMLToJSONStrict(d.text)
	if err != nil {
		line, reason := yamlError(err, d)
		l.fail(path, line, reason)
		return
	}
	l.value(path, d.first, data)
}

// value reads one document, given as JSON, that starts on line.
func (l *loader) value(path string, line int, data []byte) {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return
	}
	at := location{file: path, line: line}
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		l.fail(path, line, fmt.Errorf("not a Kubernetes object: %w", err))
		return
	}
	if h.Kind == "List" || strings.HasSuffix(h.Kind, "List") && h.Items != nil {
		for i, item := range h.Items {
			l.object(item, at, fmt.Sprintf("items[%d]: ", i))
		}
		return
	}
	l.object(data, at, "")
}

// object decodes one object; prefix places it inside a List.
func (l *loader) object(data []byte, at location, prefix string) {
	fail := func(format string, args ...any) {
		l.fail(at.file, at.line, fmt.Errorf(prefix+format, args...))
	}
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		fail("not a Kubernetes object: %w", err)
		return
	}
	switch {
	case h.Kind == "":
		fail("kind: required")
		return
	case h.APIVersion == "":
		fail("%s: apiVersion: required", h.Kind)
		return
	}
	gv, err := schema.ParseGroupVersion(h.APIVersion)
	if err != nil {
		fail("%s: apiVersion: %w", h.Kind, err)
		return
	}
	k, ok := kindByGroupKind(gv.WithKind(h.Kind).GroupKind())
	if !ok {
		l.res.skipped = append(l.res.skipped, skippedDoc{at: at, apiVersion: h.APIVersion, kind: h.Kind})
		return
	}
	if gv != k.gvk.GroupVersion() {
		fail("%s: apiVersion %q is not supported, use %q", h.Kind, h.APIVersion, k.gvk.GroupVersion().String())
		return
	}
	key := objKey{gk: k.gvk.GroupKind(), name: h.Metadata.Name}
	if k.namespaced {
		key.namespace = h.Metadata.Namespace
		if key.namespace == "" {
			key.namespace = "default"
		}
	}
	if key.name == "" {
		fail("%s: metadata.name: required", h.Kind)
		return
	}
	if msgs := k.validName(key.name); len(msgs) > 0 {
		fail("%s: metadata.name %q: %s", key, key.name, strings.Join(msgs, "; "))
		return
	}
	if key.namespace != "" {
		if msgs := validation.IsDNS1123Label(key.namespace); len(msgs) > 0 {
			fail("%s: metadata.namespace %q: %s", key, key.namespace, strings.Join(msgs, "; "))
			return
		}
	}
	obj, _, err := l.codec.Decode(data, nil, nil)
	if err != nil {
		fail("%s: %w", key, err)
		return
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		fail("%s: %w", key, err)
		return
	}
	// As the API server does: namespaced objects default to "default", and
	// cluster-scoped ones lose any namespace they were given.
	m.SetNamespace(key.namespace)
	if first, dup := l.seen[key]; dup {
		fail("duplicate %s, first defined at %s", key, first)
		return
	}
	l.seen[key] = at
	l.res.objs = append(l.res.objs, loaded{obj: obj, key: key, at: at})
}

// yamlLine finds the line number in a go.yaml.in/yaml/v2 error and the text
// after it.
var yamlLine = regexp.MustCompile(`line (\d+): ([^\n]*)`)

// yamlError turns a YAML error into a file line and a reason without the
// document-relative line number.
//
// go.yaml.in/yaml/v2 (parser.fail in decode.go) reports scanner errors with a
// 1-based line but parser errors with the 0-based line of the offending token,
// and leaves the line out when that is 0; unmarshal errors are 1-based.
func yamlError(err error, d document) (int, error) {
	msg := err.Error()
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
		msg = strings.TrimPrefix(msg, "yaml: ")
		return d.first, fmt.Errorf("invalid YAML: %s", msg)
	}
	n, _ := strconv.Atoi(m[1])
	problem := m[2]
	if isYAMLParserProblem(problem) {
		n++
	}
	line := d.start + n - 1
	// Errors found at the end of input point past the last line.
	line = min(max(line, d.first), d.last)
	return line, fmt.Errorf("invalid YAML: %s", problem)
}

// isYAMLParserProblem reports whether a problem comes from the YAML parser
// (parserc.go) rather than its scanner.
func isYAMLParserProblem(problem string) bool {
	switch problem {
	case "did not find expected ',' or ']'",
		"did not find expected ',' or '}'",
		"did not find expected '-' indicator",
		"did not find expected <document start>",
		"did not find expected <stream-start>",
		"did not find expected key",
		"did not find expected node content",
		"found duplicate %TAG directive",
		"found duplicate %YAML directive",
		"found incompatible YAML document",
		"found undefined tag handle":
		return true
	}
	return false
}
