package celcases

import (
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/offerfeed/offerfeed/config/crd"
)

func TestTableShape(t *testing.T) {
	invalid, valid := Invalid(), Valid()
	if len(invalid) < 30 {
		t.Errorf("%d invalid cases, want at least 30", len(invalid))
	}
	seen := map[string]bool{}
	for _, c := range append(invalid, valid...) {
		if c.Desc == "" || seen[c.Desc] {
			t.Errorf("description %q is empty or used twice", c.Desc)
		}
		seen[c.Desc] = true
		if _, err := c.Object(); err != nil {
			t.Errorf("%s: %v", c.Desc, err)
		}
	}
	for _, c := range invalid {
		if len(c.WantErrors) == 0 {
			t.Errorf("invalid case %q has no WantErrors", c.Desc)
		}
	}
	for _, c := range valid {
		if len(c.WantErrors) > 0 {
			t.Errorf("valid case %q has WantErrors", c.Desc)
		}
	}
	b := Base()
	b.Spec.Feed.Path = "/changed"
	if Base().Spec.Feed.Path != "/offers" {
		t.Error("Base must return a new copy on each call")
	}
}

// TestEveryRuleHasACase checks that the message of every x-kubernetes-validations rule of the
// CRD is expected by at least one invalid case, so a new rule cannot go untested.
func TestEveryRuleHasACase(t *testing.T) {
	crds, err := crd.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	var wanted []string
	for _, c := range Invalid() {
		wanted = append(wanted, c.WantErrors...)
	}
	covered := func(msg string) bool {
		for _, w := range wanted {
			if strings.Contains(w, msg) || strings.Contains(msg, w) && len(w) > 20 {
				return true
			}
		}
		return false
	}
	var walk func(path string, s *apiextensionsv1.JSONSchemaProps)
	rules := 0
	walk = func(path string, s *apiextensionsv1.JSONSchemaProps) {
		if s == nil {
			return
		}
		for _, r := range s.XValidations {
			rules++
			if !covered(r.Message) {
				t.Errorf("rule at %s has no invalid case expecting %q", path, r.Message)
			}
		}
		for name, p := range s.Properties {
			if path == ".status" || name == "status" {
				continue
			}
			walk(path+"."+name, &p)
		}
		if s.Items != nil {
			walk(path+"[]", s.Items.Schema)
		}
	}
	for _, c := range crds {
		for _, v := range c.Spec.Versions {
			walk("", v.Schema.OpenAPIV3Schema)
		}
	}
	if rules == 0 {
		t.Fatal("found no x-kubernetes-validations rules")
	}
}
