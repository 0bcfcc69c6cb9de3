package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		desc    string
		in      string
		want    []string // kind/name of each document, in order
		wantIdx []int
		wantErr string
	}{
		{"multi-document with comments and empty documents", `# a comment
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a}
---
# only a comment
---
apiVersion: v1
kind: Pod
metadata: {name: b}
`, []string{"ConfigMap/a", "Pod/b"}, []int{1, 2}, ""},
		{"JSON document", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"}}`, []string{"Pod/j"}, []int{1}, ""},
		{"a List is expanded", `apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: pod-x}}
- {apiVersion: v1, kind: Pod, metadata: {name: pod-y}}
`, []string{"Pod/pod-x", "Pod/pod-y"}, []int{1, 2}, ""},
		{"not YAML", "a: [b\n", nil, nil, "f.yaml:DOC#1: not YAML"},
		{"not an object", "apiVersion: v1\nmetadata: {name: n}\n", nil, nil, "f.yaml:DOC#1: not a Kubernetes object"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			docs, err := Decode("f.yaml", strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, d := range docs {
				got = append(got, d.Object.GetKind()+"/"+d.Object.GetName())
				if d.Index != tt.wantIdx[i] || d.File != "f.yaml" || len(d.Raw) == 0 {
					t.Errorf("document %d: index %d file %q", i, d.Index, d.File)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReadDirectory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pod := func(n string) string { return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + n + "}\n" }
	write("b.yaml", pod("b"))
	write("a.yml", pod("a"))
	write("sub/c.json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"c"}}`)
	write("kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nmetadata: {name: k}\n")
	write("notes.txt", "not a manifest")
	docs, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range docs {
		names = append(names, d.Object.GetName())
	}
	if strings.Join(names, ",") != "a,b,k,c" {
		t.Errorf("read %v, want a,b,k,c: lexical order of the paths, notes.txt left out", names)
	}
	if _, err := Read(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("a missing file is no error")
	}
}
