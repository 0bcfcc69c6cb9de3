package flagcompat

import (
	"slices"
	"testing"

	"github.com/spf13/pflag"
)

func testFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.SetNormalizeFunc(Aliases(map[string]string{"f": "filename", "v": "verbose"}))
	fs.StringSliceP("filename", "f", nil, "")
	fs.StringP("namespace", "n", "", "")
	fs.BoolP("verbose", "v", false, "")
	fs.Bool("leader-elect", true, "")
	fs.Duration("duration", 0, "")
	return fs
}

func TestGoStyleArgs(t *testing.T) {
	tests := []struct {
		desc string
		args []string
		want []string
	}{
		{"kubectl style is unchanged", []string{"-f", "a.yaml", "--namespace", "x", "-v"}, nil},
		{"one-dash long names get two", []string{"-namespace", "offers", "-leader-elect=false", "-duration=3s"},
			[]string{"--namespace", "offers", "--leader-elect=false", "--duration=3s"}},
		{"an old alias after one dash", []string{"-filename", "a.yaml", "-verbose"}, []string{"--filename", "a.yaml", "--verbose"}},
		{"a flag's value is never rewritten", []string{"-n", "-duration", "--namespace", "-verbose", "-f", "-namespace"}, nil},
		{"a shorthand with its value attached", []string{"-fduration.yaml", "-nverbose"}, nil},
		{"a cluster of shorthands", []string{"-vn", "x"}, nil},
		{"standard input and positional arguments", []string{"-f", "-", "-", "namespace"}, nil},
		{"nothing after --", []string{"-verbose", "--", "-namespace", "x"}, []string{"--verbose", "--", "-namespace", "x"}},
		{"unknown names are left to pflag's error", []string{"-strict", "--strict"}, nil},
		{"a bool flag takes no separate value", []string{"-v", "-namespace", "x"}, []string{"-v", "--namespace", "x"}},
		{"an empty list", []string{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			want := tt.want
			if want == nil {
				want = tt.args
			}
			got := GoStyleArgs(testFlags(), tt.args)
			if !slices.Equal(got, want) {
				t.Errorf("GoStyleArgs(%q) = %q, want %q", tt.args, got, want)
			}
		})
	}
}

// TestOldSpellingsParse parses old spellings with pflag after GoStyleArgs and Aliases.
func TestOldSpellingsParse(t *testing.T) {
	fs := testFlags()
	args := []string{"--f", "a.yaml", "-filename=b.yaml", "-f", "c.yaml,d.yaml", "-namespace", "offers", "--v", "-leader-elect=false"}
	if err := fs.Parse(GoStyleArgs(fs, args)); err != nil {
		t.Fatal(err)
	}
	files, _ := fs.GetStringSlice("filename")
	ns, _ := fs.GetString("namespace")
	verbose, _ := fs.GetBool("verbose")
	elect, _ := fs.GetBool("leader-elect")
	if !slices.Equal(files, []string{"a.yaml", "b.yaml", "c.yaml", "d.yaml"}) || ns != "offers" || !verbose || elect {
		t.Errorf("filename %q namespace %q verbose %v leader-elect %v", files, ns, verbose, elect)
	}
	var usage []string
	fs.VisitAll(func(f *pflag.Flag) { usage = append(usage, f.Name) })
	if slices.Contains(usage, "f") || slices.Contains(usage, "v") {
		t.Errorf("aliases are listed as flags: %q", usage)
	}
}
