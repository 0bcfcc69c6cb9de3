package cmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/offerfeed/offerfeed/internal/validation"
)

const validateTestdata = "testdata/validate"

// runValidateTest runs offerfeed validate with args and stdin, and returns its exit code, its
// standard output and its standard error.
func runValidateTest(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return runOfferfeed(t, stdin, append([]string{"validate"}, args...)...)
}

func TestValidateExitCodesAndText(t *testing.T) {
	invalid := filepath.Join(validateTestdata, "invalid.yaml")
	broken := filepath.Join(validateTestdata, "broken.yaml")
	valid := filepath.Join(validateTestdata, "valid")
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantStdout string // exact, when not empty
		wantLines  []string
		wantStderr string
	}{
		{
			name:       "directory of valid manifests, read recursively",
			args:       []string{"-f", valid},
			wantCode:   0,
			wantStdout: "offerfeed validate: 2 files, 4 documents: 3 valid, 0 invalid (0 errors), 1 ignored\n",
		},
		{
			name:     "verbose lists valid and ignored documents",
			args:     []string{"--filename", valid, "--verbose", "--namespace", "drivers"},
			wantCode: 0,
			wantStdout: valid + "/nested/flex.json:DOC#1: OfferFeedPolicy/drivers/flex: valid\n" +
				valid + "/policies.yaml:DOC#1: OfferFeedPolicy/offers/standard: valid\n" +
				valid + "/policies.yaml:DOC#2: ignored: kind ConfigMap of v1 is not validated\n" +
				valid + "/policies.yaml:DOC#3: OfferFeedPolicy/offers/accept-only: valid\n" +
				"offerfeed validate: 2 files, 4 documents: 3 valid, 0 invalid (0 errors), 1 ignored\n",
		},
		{
			name:     "invalid policies: one line per error and a summary",
			args:     []string{"-f", invalid},
			wantCode: 1,
			wantStdout: invalid + `:DOC#2: OfferFeedPolicy/offers/too-fast: spec.feed.rate: unknown field "spec.feed.rate"` + "\n" +
				invalid + `:DOC#2: OfferFeedPolicy/offers/too-fast: spec.accept: Invalid value: exactly one of a {offerId} segment in pathTemplate and offerIdField must name the offer` + "\n" +
				invalid + `:DOC#2: OfferFeedPolicy/offers/too-fast: spec.accept: Invalid value: maxAccepts and window must be set together` + "\n" +
				invalid + `:DOC#2: OfferFeedPolicy/offers/too-fast: spec.feed.minInterval: Invalid value: "5ms": minInterval must be between 10ms and 1h` + "\n" +
				invalid + `:DOC#4: OfferFeedPolicy/no-namespace: spec.targetSelector: Invalid value: targetSelector must set matchLabels or matchExpressions; an empty selector would govern every pod in the namespace` + "\n" +
				"offerfeed validate: 1 file, 4 documents: 1 valid, 2 invalid (5 errors), 1 ignored\n",
		},
		{
			name:     "valid and invalid files together",
			args:     []string{"-f", valid, "-f", invalid},
			wantCode: 1,
			wantLines: []string{
				"offerfeed validate: 3 files, 8 documents: 4 valid, 2 invalid (5 errors), 2 ignored",
			},
		},
		{
			name:     "items of a List",
			args:     []string{"-f", filepath.Join(validateTestdata, "list.yaml"), "-v"},
			wantCode: 1,
			wantStdout: filepath.Join(validateTestdata, "list.yaml") + ":DOC#1: OfferFeedPolicy/offers/listed-ok: valid\n" +
				filepath.Join(validateTestdata, "list.yaml") + `:DOC#1: OfferFeedPolicy/offers/listed-bad: spec.clientIdentity.header: Invalid value: "OfferFeed-Driver": header must not start with OfferFeed-: the gateway strips those headers from clients` + "\n" +
				"offerfeed validate: 1 file, 2 documents: 1 valid, 1 invalid (1 error), 0 ignored\n",
		},
		{
			name:     "unparsable YAML and duplicate keys",
			args:     []string{"-f", broken},
			wantCode: 1,
			wantLines: []string{
				broken + ":DOC#1: not valid YAML: yaml: line 6: did not find expected ',' or '}'",
				broken + `:DOC#2: not valid YAML: yaml: unmarshal errors: line 9: key "feed" already set in map`,
				"offerfeed validate: 1 file, 2 documents: 0 valid, 2 invalid (2 errors), 0 ignored",
			},
		},
		{
			name:       "standard input",
			args:       []string{"-f", "-"},
			stdin:      mustRead(t, filepath.Join(valid, "nested", "flex.json")),
			wantCode:   0,
			wantStdout: "offerfeed validate: 1 file, 1 document: 1 valid, 0 invalid (0 errors), 0 ignored\n",
		},
		{
			name:       "missing file",
			args:       []string{"-f", filepath.Join(validateTestdata, "nope.yaml")},
			wantCode:   2,
			wantStderr: "nope.yaml: no such file or directory",
		},
		{
			name:       "no -f",
			args:       nil,
			wantCode:   2,
			wantStderr: "no manifests",
		},
		{
			name:       "positional argument",
			args:       []string{valid},
			wantCode:   2,
			wantStderr: "name files with -f",
		},
		{
			name:       "unknown output format",
			args:       []string{"-f", valid, "-o", "xml"},
			wantCode:   2,
			wantStderr: "--output must be text, json or yaml",
		},
		{
			name:       "unknown flag",
			args:       []string{"-f", valid, "--strict"},
			wantCode:   2,
			wantStderr: "unknown flag: --strict",
		},
		{
			name:      "help",
			args:      []string{"-h"},
			wantCode:  0,
			wantLines: []string{"Exit status: 0 all valid, 1 a policy is invalid or a document does not parse,"},
		},
		{
			name:     "the flag package's spellings: one dash before long names, two before short ones",
			args:     []string{"-filename", valid, "-namespace", "drivers", "--v", "--o", "text"},
			wantCode: 0,
			wantLines: []string{
				valid + "/nested/flex.json:DOC#1: OfferFeedPolicy/drivers/flex: valid",
				"offerfeed validate: 2 files, 4 documents: 3 valid, 0 invalid (0 errors), 1 ignored",
			},
		},
		{
			name:     "--f and --n, and comma-separated files as with kubectl",
			args:     []string{"--f", valid + "," + invalid, "--n", "drivers"},
			wantCode: 1,
			wantLines: []string{
				"offerfeed validate: 3 files, 8 documents: 4 valid, 2 invalid (5 errors), 2 ignored",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runValidateTest(t, tt.stdin, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			if tt.wantStdout != "" && stdout != tt.wantStdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.wantStdout)
			}
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			for _, want := range tt.wantLines {
				found := false
				for _, l := range lines {
					found = found || l == want
				}
				if !found {
					t.Errorf("stdout lacks line %q; got:\n%s", want, stdout)
				}
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr lacks %q; got:\n%s", tt.wantStderr, stderr)
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	invalid := filepath.Join(validateTestdata, "invalid.yaml")
	code, stdout, stderr := runValidateTest(t, "", "-f", invalid, "--output", "json")
	if code != 1 {
		t.Fatalf("exit code %d, want 1; stderr:\n%s", code, stderr)
	}
	var got validateReport
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	wantSummary := validateSummary{Valid: 1, Invalid: 2, Ignored: 1, Errors: 5}
	if got.Files != 1 || got.Summary != wantSummary || len(got.Documents) != 4 {
		t.Fatalf("files %d, summary %+v, %d documents; want 1, %+v, 4", got.Files, got.Summary, len(got.Documents), wantSummary)
	}
	statuses := []validation.Status{validation.StatusValid, validation.StatusInvalid, validation.StatusIgnored, validation.StatusInvalid}
	for i, d := range got.Documents {
		if d.Document != i+1 || d.File != invalid || d.Status != statuses[i] {
			t.Errorf("document %d: %+v; want DOC#%d of %s, %s", i, d, i+1, invalid, statuses[i])
		}
	}
	tooFast := got.Documents[1]
	if tooFast.Kind != "OfferFeedPolicy" || tooFast.Namespace != "offers" || tooFast.Name != "too-fast" {
		t.Errorf("document 2 is %s/%s/%s", tooFast.Kind, tooFast.Namespace, tooFast.Name)
	}
	want := validation.Error{Field: "spec.feed.minInterval", Type: "FieldValueInvalid", Message: `Invalid value: "5ms": minInterval must be between 10ms and 1h`}
	found := false
	for _, e := range tooFast.Errors {
		found = found || e == want
	}
	if !found {
		t.Errorf("errors of document 2 lack %+v: %+v", want, tooFast.Errors)
	}
	if tooFast.Errors[0].Type != validation.ErrorTypeUnknownField || tooFast.Errors[0].Field != "spec.feed.rate" {
		t.Errorf("first error of document 2 is %+v, want the unknown field spec.feed.rate", tooFast.Errors[0])
	}
}

// TestValidateYAML checks that -o yaml is the JSON report as YAML.
func TestValidateYAML(t *testing.T) {
	invalid := filepath.Join(validateTestdata, "invalid.yaml")
	_, jsonOut, _ := runValidateTest(t, "", "-f", invalid, "-o", "json")
	code, yamlOut, stderr := runValidateTest(t, "", "-f", invalid, "-o", "yaml")
	if code != 1 {
		t.Fatalf("exit code %d, want 1; stderr:\n%s", code, stderr)
	}
	var fromJSON, fromYAML validateReport
	if err := json.Unmarshal([]byte(jsonOut), &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict([]byte(yamlOut), &fromYAML); err != nil {
		t.Fatalf("output is not the YAML report: %v\n%s", err, yamlOut)
	}
	if fromYAML.Summary != (validateSummary{Valid: 1, Invalid: 2, Ignored: 1, Errors: 5}) || !reflect.DeepEqual(fromYAML, fromJSON) {
		t.Errorf("YAML report %+v differs from the JSON one %+v", fromYAML, fromJSON)
	}
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
