// Package manifest reads Kubernetes manifests from files and directories: multi-document YAML
// or JSON, as `kubectl apply -f` takes them.
package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Document is one object of a manifest file.
type Document struct {
	// File is the file it came from.
	File string
	// Index is its position in the file, from 1, counting non-empty documents.
	Index int
	// Raw is the document as JSON.
	Raw []byte
	// Object is the document decoded.
	Object *unstructured.Unstructured
}

// Where names the document for messages: FILE:DOC#N.
func (d Document) Where() string { return fmt.Sprintf("%s:DOC#%d", d.File, d.Index) }

// Read reads every document of the given files, and of the *.yaml, *.yml and *.json files
// below the given directories, in lexical order (see Files). "-" reads standard input. A List
// is expanded into its items.
func Read(paths ...string) ([]Document, error) {
	return ReadFrom(os.Stdin, paths)
}

// ReadFrom is Read with stdin standing for "-", which is read once however often it is named.
func ReadFrom(stdin io.Reader, paths []string) ([]Document, error) {
	files, err := Files(paths)
	if err != nil {
		return nil, err
	}
	var docs []Document
	stdinRead := false
	for _, f := range files {
		var d []Document
		switch {
		case f == "-" && stdinRead:
			continue
		case f == "-":
			stdinRead = true
			d, err = Decode(f, stdin)
		default:
			d, err = decodeFile(f)
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, d...)
	}
	return docs, nil
}

// Files expands paths into the files to read: a file is taken as it is (whatever its
// extension); a directory is walked recursively for *.yaml, *.yml and *.json, in lexical
// order. "-" stands for standard input and is kept.
func Files(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if p == "-" {
			out = append(out, p)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			out = append(out, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".yaml", ".yml", ".json":
				if !d.IsDir() {
					found = append(found, path)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		slices.Sort(found)
		out = append(out, found...)
	}
	return out, nil
}

func decodeFile(name string) ([]Document, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Decode(name, f)
}

// Decode reads the documents of one stream; name is used in Document.File and in errors.
func Decode(name string, r io.Reader) ([]Document, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs []Document
	for n := 1; ; {
		chunk, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading document %d: %w", name, n, err)
		}
		if len(bytes.TrimSpace(stripComments(chunk))) == 0 {
			continue
		}
		raw, err := yaml.YAMLToJSON(chunk)
		if err != nil {
			return nil, fmt.Errorf("%s:DOC#%d: not YAML: %w", name, n, err)
		}
		if string(raw) == "null" {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("%s:DOC#%d: not a Kubernetes object: %w", name, n, err)
		}
		if obj.IsList() {
			list, err := obj.ToList()
			if err != nil {
				return nil, fmt.Errorf("%s:DOC#%d: %w", name, n, err)
			}
			for i := range list.Items {
				item := list.Items[i]
				b, err := item.MarshalJSON()
				if err != nil {
					return nil, fmt.Errorf("%s:DOC#%d: %w", name, n, err)
				}
				docs = append(docs, Document{File: name, Index: n, Raw: b, Object: &item})
				n++
			}
			continue
		}
		docs = append(docs, Document{File: name, Index: n, Raw: raw, Object: obj})
		n++
	}
}

func stripComments(b []byte) []byte {
	var out []byte
	for line := range bytes.Lines(b) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
		}
	}
	return out
}
