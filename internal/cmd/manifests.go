package cmd

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/offerfeed/offerfeed/internal/cmd/flagcompat"
)

// manifestOptions are the kubectl-style flags of the commands that read manifests, render and
// validate: -f/--filename, -n/--namespace and -o/--output.
type manifestOptions struct {
	// filenames are the -f arguments: files, directories (read recursively for *.yaml, *.yml
	// and *.json) or - for standard input.
	filenames []string
	// namespace is assumed for the policies that name none.
	namespace string
	// output is the output format, one of outputs.
	output  string
	outputs []string
}

// manifestFlagAliases are the names the flags had before the CLI moved to cobra: the flag
// package took --f, --n and --o as well as -f, -n and -o.
var manifestFlagAliases = map[string]string{"f": "filename", "n": "namespace", "o": "output"}

// addFlags adds -f, -n and -o to fs; outputs[0] is the default output. More aliases (old
// name: new name) may be given for the command's other flags.
func (o *manifestOptions) addFlags(fs *pflag.FlagSet, namespaceDefault, namespaceUsage string, outputs []string, outputUsage string, aliases map[string]string) {
	all := maps.Clone(manifestFlagAliases)
	maps.Copy(all, aliases)
	fs.SetNormalizeFunc(flagcompat.Aliases(all))
	o.outputs = outputs
	fs.StringSliceVarP(&o.filenames, "filename", "f", nil, "manifest file, or directory read recursively for *.yaml, *.yml and *.json (repeatable or comma-separated; - for standard input)")
	fs.StringVarP(&o.namespace, "namespace", "n", namespaceDefault, namespaceUsage)
	fs.StringVarP(&o.output, "output", "o", outputs[0], "output format: "+strings.Join(outputs, "|")+"; "+outputUsage)
}

// validate checks the flags: some -f, and a known -o.
func (o *manifestOptions) validate() error {
	if len(o.filenames) == 0 {
		return usageErrorf("no manifests: give -f FILE|DIR")
	}
	if !slices.Contains(o.outputs, o.output) {
		return usageErrorf("--output must be %s, not %q", orList(o.outputs), o.output)
	}
	return nil
}

// orList writes a, b or c.
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return fmt.Sprintf("%s or %s", strings.Join(s[:len(s)-1], ", "), s[len(s)-1])
}
