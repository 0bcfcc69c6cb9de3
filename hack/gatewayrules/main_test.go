package main

import (
	"bytes"
	"os"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// TestCommittedRulesAreCurrent fails when pkg/gatewayconfig/zz_generated.rules.go is stale:
// a marker of api/v1alpha1 changed and `make manifests generate` was not run.
func TestCommittedRulesAreCurrent(t *testing.T) {
	const file = "../../pkg/gatewayconfig/zz_generated.rules.go"
	committed, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, out) {
		t.Fatalf("%s differs from the generator's output; run `make manifests generate` and commit it", file)
	}
}

func rules(rs ...string) *apiextensionsv1.JSONSchemaProps {
	s := &apiextensionsv1.JSONSchemaProps{}
	for _, r := range rs {
		s.XValidations = append(s.XValidations, apiextensionsv1.ValidationRule{Rule: r})
	}
	return s
}

// TestDurationBounds reads the two rule shapes of the CRD and refuses any other, so that a
// new kind of duration rule cannot be left out of the gateway's checks unnoticed.
func TestDurationBounds(t *testing.T) {
	for _, tc := range []struct {
		rule   string
		lo, hi time.Duration
		err    bool
	}{
		{rule: "duration(self) >= duration('10ms') && duration(self) <= duration('1h')", lo: 10 * time.Millisecond, hi: time.Hour},
		{rule: "duration(self) <= duration('1m')", hi: time.Minute},
		{rule: "duration(self) >= duration('1s')", err: true},
		{rule: "duration(self) < duration('1m')", err: true},
		{rule: "duration(self) <= duration('1 minute')", err: true},
	} {
		lo, hi, err := DurationBounds(rules(tc.rule))
		if (err != nil) != tc.err || lo != tc.lo || hi != tc.hi {
			t.Errorf("%s: got %v, %v, %v; want %v, %v, error %v", tc.rule, lo, hi, err, tc.lo, tc.hi, tc.err)
		}
	}
}

func TestReservedHeaders(t *testing.T) {
	prefix, names, err := ReservedHeaders(rules("!self.lowerAscii().startsWith('offerfeed-')", "!(self.lowerAscii() in ['host', 'te'])"))
	if err != nil || prefix != "offerfeed-" || len(names) != 2 || names[0] != "host" || names[1] != "te" {
		t.Errorf("got %q %q %v", prefix, names, err)
	}
	if _, _, err := ReservedHeaders(rules("!self.lowerAscii().startsWith('offerfeed-')", "self.size() < 10")); err == nil {
		t.Error("a rule of another shape was ignored")
	}
	if _, _, err := ReservedHeaders(rules("!self.lowerAscii().startsWith('offerfeed-')")); err == nil {
		t.Error("no reserved names and no error")
	}
}

// TestLabelFormat reads the two label rule shapes of the CRD and refuses any other, so that a
// change of the API's label syntax cannot leave the gateway's checks behind unnoticed.
func TestLabelFormat(t *testing.T) {
	for _, tc := range []struct {
		rules []string
		keys  bool
		want  string
		err   bool
	}{
		{rules: []string{"!format.qualifiedName().validate(self).hasValue()"}, want: "qualifiedName"},
		{rules: []string{"!format.labelValue().validate(self).hasValue()"}, want: "labelValue"},
		{rules: []string{"self.all(k, !format.qualifiedName().validate(k).hasValue())"}, keys: true, want: "qualifiedName"},
		{rules: []string{"self.all(k, !format.qualifiedName().validate(k).hasValue())"}, err: true},
		{rules: []string{"!format.labelValue().validate(self).hasValue()"}, keys: true, err: true},
		{rules: []string{"!format.labelValue().validate(self).hasValue()", "self.size() < 10"}, err: true},
		{rules: []string{"!format.labelValue().validate(self).hasValue()", "!format.dns1123Label().validate(self).hasValue()"}, err: true},
		{rules: nil, err: true},
	} {
		got, err := LabelFormat(rules(tc.rules...), tc.keys)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%q (keys %v): got %q, %v; want %q, error %v", tc.rules, tc.keys, got, err, tc.want, tc.err)
		}
	}
}
