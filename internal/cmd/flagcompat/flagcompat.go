// Package flagcompat keeps command lines written for the standard library's flag package
// working with pflag, which offerfeed's commands parse with since they moved to cobra.
//
// Two spellings that flag accepted and pflag does not:
//   - a long name after one dash, such as -namespace offers or -leader-elect=false (pflag reads
//     that as the shorthand cluster -n -a -m ...): GoStyleArgs rewrites it to --namespace;
//   - a former name of a flag, such as --f for -f/--filename: Aliases maps it in the flag set's
//     normalize func, so it works and stays out of the help.
package flagcompat

import (
	"strings"

	"github.com/spf13/pflag"
)

// Aliases returns a pflag normalize func that maps each old name (key) to the flag's name
// (value). Other names are left alone.
func Aliases(aliases map[string]string) func(*pflag.FlagSet, string) pflag.NormalizedName {
	return func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if to, ok := aliases[name]; ok {
			return pflag.NormalizedName(to)
		}
		return pflag.NormalizedName(name)
	}
}

// GoStyleArgs returns args with every single-dash long flag of fs (-name or -name=value) spelled
// with two dashes, as the flag package allowed. It leaves alone flag values, arguments after
// "--", shorthands and anything that names no long flag of fs, so -fpolicy.yaml stays the
// shorthand -f with its value.
func GoStyleArgs(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		out = append(out, a)
		if a == "--" {
			return append(out, args[i+1:]...)
		}
		if len(a) < 2 || a[0] != '-' {
			continue // a positional argument, or "-" (standard input)
		}
		long := strings.HasPrefix(a, "--")
		name, _, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
		var f *pflag.Flag
		switch {
		case long:
			f = fs.Lookup(name)
		case len(name) > 1:
			// -name: a long flag after one dash; else shorthands with a value attached
			// (-fpolicy.yaml) or a cluster of them (-vf), left to pflag.
			if f = fs.Lookup(name); f != nil {
				out[len(out)-1] = "-" + a
			}
		case !hasValue:
			f = fs.ShorthandLookup(name)
		}
		if f != nil && !hasValue && f.NoOptDefVal == "" && i+1 < len(args) {
			i++
			out = append(out, args[i]) // the flag's value, whatever it looks like
		}
	}
	return out
}
