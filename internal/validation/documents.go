package validation

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Status is the outcome for one document.
type Status string

const (
	// StatusValid is a document of a validated kind that the API server would accept.
	StatusValid Status = "valid"
	// StatusInvalid is a document the API server would refuse, or that does not parse.
	StatusInvalid Status = "invalid"
	// StatusIgnored is a document of another kind, or not a Kubernetes object at all.
	StatusIgnored Status = "ignored"
)

// Result is the outcome for one document of a file.
type Result struct {
	// File is the file name as given (or found in a directory); "-" is standard input.
	File string `json:"file"`
	// Document is the 1-based position of the document among the non-empty documents of File.
	Document int `json:"document"`
	// Item is the index in items of an object of a List document; nil for other documents.
	Item *int `json:"item,omitempty"`
	// APIVersion, Kind, Namespace and Name identify the object, as far as the document says.
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name,omitempty"`
	// Status is valid, invalid or ignored.
	Status Status `json:"status"`
	// Reason says why an ignored document was ignored.
	Reason string `json:"reason,omitempty"`
	// Errors are why an invalid document is invalid.
	Errors []Error `json:"errors,omitempty"`
}

// Object names the document's object as kind/namespace/name, without the namespace when it
// has none, or "" when the document is not an object.
func (r Result) Object() string {
	switch {
	case r.Kind == "":
		return ""
	case r.Namespace == "":
		return r.Kind + "/" + r.Name
	default:
		return r.Kind + "/" + r.Namespace + "/" + r.Name
	}
}

// document is one non-empty document of a file, as JSON.
type document struct {
	json []byte
	err  error
}

// splitDocuments splits YAML (documents separated by --- lines) or JSON into its non-empty
// documents, each converted to JSON. Duplicate keys are errors, as the API server's strict
// decoding refuses duplicate fields.
func splitDocuments(data []byte) ([]document, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []document
	for {
		chunk, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		j, err := yaml.YAMLToJSONStrict(chunk)
		if err != nil {
			out = append(out, document{err: fmt.Errorf("not valid YAML: %s", oneLine(err.Error()))})
			continue
		}
		if t := bytes.TrimSpace(j); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			continue
		}
		out = append(out, document{json: j})
	}
}

// oneLine joins the lines of a multi-line message, so that each error stays on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Check validates every document of data, the content of file. Documents that are not of a
// kind the validator knows are ignored; documents that do not parse are invalid. namespace is
// assumed for namespaced objects without one (see Validate).
func (v *Validator) Check(ctx context.Context, file string, data []byte, namespace string) []Result {
	docs, splitErr := splitDocuments(data)
	var out []Result
	for i, d := range docs {
		out = append(out, v.checkDocument(ctx, file, i+1, d, namespace)...)
	}
	if splitErr != nil {
		out = append(out, Result{File: file, Document: len(docs) + 1, Status: StatusInvalid,
			Errors: []Error{{Type: "DocumentInvalid", Message: "not valid YAML: " + oneLine(splitErr.Error())}}})
	}
	return out
}

func (v *Validator) checkDocument(ctx context.Context, file string, index int, d document, namespace string) []Result {
	res := Result{File: file, Document: index}
	if d.err != nil {
		return []Result{res.invalid(d.err.Error())}
	}
	var raw any
	if err := utiljson.Unmarshal(d.json, &raw); err != nil {
		return []Result{res.invalid(fmt.Sprintf("not valid JSON: %v", err))}
	}
	// A List (kind List, or any *List with items, as kubectl get -o yaml writes) is checked
	// item by item, as kubectl apply creates its items one by one.
	if m, ok := raw.(map[string]any); ok {
		kind, _ := m["kind"].(string)
		if items, ok := m["items"].([]any); ok && strings.HasSuffix(kind, "List") {
			out := make([]Result, 0, len(items))
			for i, item := range items {
				r := res
				r.Item = ptrTo(i)
				out = append(out, v.checkObject(ctx, r, item, namespace))
			}
			return out
		}
	}
	return []Result{v.checkObject(ctx, res, raw, namespace)}
}

// checkObject checks one decoded document, or one item of a List.
func (v *Validator) checkObject(ctx context.Context, res Result, raw any, namespace string) Result {
	obj, ok := raw.(map[string]any)
	if !ok {
		res.Status, res.Reason = StatusIgnored, fmt.Sprintf("not a Kubernetes object (a %s)", jsonKind(raw))
		return res
	}
	res.APIVersion, _ = obj["apiVersion"].(string)
	res.Kind, _ = obj["kind"].(string)
	if md, ok := obj["metadata"].(map[string]any); ok {
		res.Namespace, _ = md["namespace"].(string)
		res.Name, _ = md["name"].(string)
		if res.Name == "" {
			res.Name, _ = md["generateName"].(string)
		}
	}
	if !v.Handles(res.APIVersion, res.Kind) {
		switch {
		case v.handlesGroup(res.APIVersion):
			return res.invalid(fmt.Sprintf("kind %q is not a kind of %s", res.Kind, res.APIVersion))
		case res.Kind == "" && res.APIVersion == "":
			res.Status, res.Reason = StatusIgnored, "not a Kubernetes object (no apiVersion and kind)"
		case res.APIVersion == "" && v.handlesKind(res.Kind):
			return res.invalid("apiVersion: Required value")
		default:
			res.Status, res.Reason = StatusIgnored, fmt.Sprintf("kind %s of %s is not validated", res.Kind, res.APIVersion)
		}
		return res
	}
	res.Errors = v.Validate(ctx, obj, namespace)
	res.Status = StatusValid
	if len(res.Errors) > 0 {
		res.Status = StatusInvalid
	}
	return res
}

// invalid returns r refused for a reason about the whole document.
func (r Result) invalid(msg string) Result {
	r.Status = StatusInvalid
	r.Errors = append(r.Errors, Error{Type: "DocumentInvalid", Message: msg})
	return r
}

func ptrTo[T any](v T) *T { return &v }

// handlesGroup reports whether apiVersion is of a group the validator knows.
func (v *Validator) handlesGroup(apiVersion string) bool {
	group, _, _ := strings.Cut(apiVersion, "/")
	if !strings.Contains(apiVersion, "/") {
		return false
	}
	for gk := range v.kinds {
		if gk.Group == group {
			return true
		}
	}
	return false
}

// handlesKind reports whether kind is a kind the validator knows, in any group.
func (v *Validator) handlesKind(kind string) bool {
	for gk := range v.kinds {
		if gk.Kind == kind {
			return true
		}
	}
	return false
}

func jsonKind(x any) string {
	switch x.(type) {
	case []any:
		return "list"
	case string:
		return "string"
	case bool:
		return "boolean"
	case nil:
		return "null"
	default:
		return "number"
	}
}
