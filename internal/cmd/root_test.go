package cmd

import (
	"bytes"
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// runOfferfeed runs the offerfeed command line args in process with stdin, and returns its
// exit code, standard output and standard error.
func runOfferfeed(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Execute(t.Context(), args, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestHelpExitsZero asks every command for help, in every way, and wants its usage on
// standard output and exit code 0.
func TestHelpExitsZero(t *testing.T) {
	names := []string{"", "help"} // cobra adds help when it runs
	for _, c := range NewRootCommand().Commands() {
		names = append(names, c.Name())
	}
	for _, want := range []string{"manager", "gateway", "render", "validate", "version"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("no command %q among %q", want, names)
		}
	}
	for _, name := range names {
		for _, args := range [][]string{{name, "-h"}, {name, "--help"}, {"help", name}} {
			args = strings.Fields(strings.Join(args, " "))
			code, stdout, stderr := runOfferfeed(t, "", args...)
			if code != 0 || !strings.Contains(stdout, "Usage:") || stderr != "" {
				t.Errorf("offerfeed %s: exit %d, stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
			}
			if want := "offerfeed " + name; name != "" && name != "help" && !strings.Contains(stdout, want) {
				t.Errorf("offerfeed %s: help does not show %q:\n%s", strings.Join(args, " "), want, stdout)
			}
		}
	}
}

// TestUsageErrors wants exit code 2 and the usage of the command on standard error for an
// unknown command, an unknown flag of every command, a positional argument, and no command.
func TestUsageErrors(t *testing.T) {
	type usageCase struct {
		args       []string
		wantStderr string
	}
	cases := []usageCase{
		{[]string{}, "no command given"},
		{[]string{"serve"}, `unknown command "serve" for "offerfeed"`},
		{[]string{"mananger"}, "Did you mean this?\n\tmanager"},
		{[]string{"--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
		{[]string{"version", "-o", "xml"}, `--output must be json or yaml, not "xml"`},
		{[]string{"render", "policies/"}, `unexpected argument "policies/"; name files with -f`},
	}
	for _, c := range NewRootCommand().Commands() {
		if c.Name() != "demo" { // takes any flag, to say where the demo went
			cases = append(cases, usageCase{[]string{c.Name(), "--no-such-flag"}, "unknown flag: --no-such-flag"})
		}
	}
	for _, tc := range cases {
		code, stdout, stderr := runOfferfeed(t, "", tc.args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.wantStderr) || !strings.Contains(stderr, "Usage:") {
			t.Errorf("offerfeed %s: exit %d, want %d; stderr lacks %q or the usage:\n%s", strings.Join(tc.args, " "), code, ExitUsage, tc.wantStderr, stderr)
		}
		if stdout != "" {
			t.Errorf("offerfeed %s: stdout %q, want nothing", strings.Join(tc.args, " "), stdout)
		}
	}
}

// TestDemoMoved checks that `offerfeed demo`, with the demo's flags, says where the demo is now.
func TestDemoMoved(t *testing.T) {
	code, _, stderr := runOfferfeed(t, "", "demo", "--duration", "30s", "--humans", "20")
	if code != ExitUsage || !strings.Contains(stderr, "make demo") || !strings.Contains(stderr, "./cmd/offerfeed-demo") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	code, stdout, _ := runOfferfeed(t, "", "--help")
	if code != 0 || strings.Contains(stdout, "demo") {
		t.Errorf("the root help lists the moved demo:\n%s", stdout)
	}
}

func TestBuildVersion(t *testing.T) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	tests := []struct {
		desc string
		bi   *debug.BuildInfo
		ok   bool
		want versionInfo
	}{
		{"no build information", nil, false,
			versionInfo{Version: "unknown", GoVersion: runtime.Version(), Platform: platform}},
		{"a release installed with go install", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "github.com/offerfeed/offerfeed", Version: "v0.1.0"}}, true,
			versionInfo{Version: "v0.1.0", GoVersion: "go1.26.1", Platform: platform}},
		{"a build in a clean checkout", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "-trimpath", Value: "true"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "8e70179aa4c1b2d3e4f5a6b7c8d9e0f1a2b3c4d5"},
			{Key: "vcs.time", Value: "2026-11-30T07:00:00Z"},
			{Key: "vcs.modified", Value: "false"},
		}}, true,
			versionInfo{Version: "(devel)", Revision: "8e70179aa4c1b2d3e4f5a6b7c8d9e0f1a2b3c4d5", Time: "2026-11-30T07:00:00Z", Modified: ptr.To(false), GoVersion: "go1.26.0", Platform: platform}},
		{"uncommitted changes", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"},
		}}, true,
			versionInfo{Version: "(devel)", Revision: "abc", Modified: ptr.To(true), GoVersion: runtime.Version(), Platform: platform}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, buildVersion(tt.bi, tt.ok)); diff != "" {
				t.Errorf("buildVersion (-want +got):\n%s", diff)
			}
		})
	}
}

// TestVersionCommand runs offerfeed version in this test binary, whose build information has
// the module and the Go version but no VCS stamp.
func TestVersionCommand(t *testing.T) {
	want := buildVersion(debug.ReadBuildInfo())
	if want.GoVersion != runtime.Version() {
		t.Errorf("Go version %q, want %q", want.GoVersion, runtime.Version())
	}
	code, stdout, stderr := runOfferfeed(t, "", "version", "-o", "json")
	var got versionInfo
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil {
		t.Fatalf("exit %d, %v; stdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("version -o json (-want +got):\n%s", diff)
	}
	code, stdout, _ = runOfferfeed(t, "", "version", "--output=yaml")
	got = versionInfo{}
	if err := yaml.UnmarshalStrict([]byte(stdout), &got); code != 0 || err != nil || !cmp.Equal(want, got) {
		t.Errorf("version -o yaml: exit %d, %v, %+v; want %+v", code, err, got, want)
	}
	code, stdout, _ = runOfferfeed(t, "", "version")
	for _, line := range []string{"version:   " + want.Version, "go:        " + runtime.Version(), "platform:  " + runtime.GOOS + "/" + runtime.GOARCH} {
		if code != 0 || !strings.Contains(stdout, line+"\n") {
			t.Errorf("version: exit %d, output lacks %q:\n%s", code, line, stdout)
		}
	}
}
