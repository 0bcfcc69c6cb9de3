package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/offerfeed/offerfeed/internal/manifest"
	"github.com/offerfeed/offerfeed/internal/validation"
)

func init() {
	register("validate", "check OfferFeedPolicy manifests offline against the API server's rules", runValidate)
}

// Exit codes of offerfeed validate.
const (
	validateOK      = 0 // every policy is valid
	validateInvalid = 1 // a policy is invalid, or a document does not parse
	validateUsage   = 2 // usage error, or a file that cannot be read
)

func runValidate(args []string) int {
	return validateMain(context.Background(), args, os.Stdin, os.Stdout, os.Stderr)
}

// validateReport is the --output json document.
type validateReport struct {
	// Files is how many files were read.
	Files int `json:"files"`
	// Summary counts the documents by status, and the errors of the invalid ones.
	Summary validateSummary `json:"summary"`
	// Documents are the results of every document, ignored ones included.
	Documents []validation.Result `json:"documents"`
}

type validateSummary struct {
	Valid   int `json:"valid"`
	Invalid int `json:"invalid"`
	Ignored int `json:"ignored"`
	Errors  int `json:"errors"`
}

func validateMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var files stringList
	fs.Var(&files, "f", "manifest file or directory, read recursively for *.yaml, *.yml and *.json (repeatable; - for standard input)")
	fs.Var(&files, "filename", "same as -f")
	var output, namespace string
	var verbose bool
	for _, n := range []string{"o", "output"} {
		fs.StringVar(&output, n, "text", "output format: text (one line per error, then a summary) or json")
	}
	for _, n := range []string{"n", "namespace"} {
		fs.StringVar(&namespace, n, "", "namespace assumed for policies that name none, as with kubectl apply -n (default \"default\")")
	}
	for _, n := range []string{"v", "verbose"} {
		fs.BoolVar(&verbose, n, false, "also list valid and ignored documents (text output)")
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: offerfeed validate -f FILE|DIR [-f ...] [-o text|json] [-n NAMESPACE] [-v]")
		fmt.Fprintln(stderr, "\nChecks OfferFeedPolicy manifests offline against the rules the API server enforces: the")
		fmt.Fprintln(stderr, "CRD's OpenAPI schema, its CEL rules and strict field validation, with the API server's")
		fmt.Fprintln(stderr, "own code. Documents of other kinds are ignored.")
		fmt.Fprintln(stderr, "\nOutput: FILE:DOC#N: KIND/NAMESPACE/NAME: FIELD: MESSAGE for each error, then a summary.")
		fmt.Fprintln(stderr, "Exit status: 0 all valid, 1 a policy is invalid or a document does not parse,")
		fmt.Fprintln(stderr, "2 usage error or unreadable file.")
		fmt.Fprintln(stderr, "\nFlags:")
		fmt.Fprintln(stderr, "  -f, --filename FILE|DIR  manifest file, or directory read recursively for *.yaml, *.yml")
		fmt.Fprintln(stderr, "                           and *.json (repeatable; - for standard input)")
		fmt.Fprintln(stderr, "  -o, --output text|json   one line per error and a summary (text, the default), or a JSON")
		fmt.Fprintln(stderr, "                           report of every document")
		fmt.Fprintln(stderr, "  -n, --namespace NS       namespace assumed for policies that name none, as kubectl apply -n")
		fmt.Fprintln(stderr, "                           (default: validated as in \"default\")")
		fmt.Fprintln(stderr, "  -v, --verbose            also list valid and ignored documents (text output)")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return validateOK
		}
		return validateUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "offerfeed validate: unexpected argument %q; name files with -f\n\n", fs.Arg(0))
		fs.Usage()
		return validateUsage
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "offerfeed validate: no manifests: give -f FILE|DIR")
		fs.Usage()
		return validateUsage
	}
	if output != "text" && output != "json" {
		fmt.Fprintf(stderr, "offerfeed validate: --output must be text or json, not %q\n", output)
		return validateUsage
	}

	paths, err := manifest.Files(files)
	if err != nil {
		fmt.Fprintf(stderr, "offerfeed validate: %v\n", err)
		return validateUsage
	}
	v, err := validation.New()
	if err != nil {
		fmt.Fprintf(stderr, "offerfeed validate: loading the CRDs: %v\n", err)
		return validateUsage
	}
	report := validateReport{Files: len(paths), Documents: []validation.Result{}}
	stdinRead := false
	for _, p := range paths {
		var data []byte
		if p == "-" {
			if stdinRead {
				continue
			}
			stdinRead = true
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(p)
		}
		if err != nil {
			fmt.Fprintf(stderr, "offerfeed validate: %v\n", err)
			return validateUsage
		}
		report.Documents = append(report.Documents, v.Check(ctx, p, data, namespace)...)
	}
	for _, r := range report.Documents {
		switch r.Status {
		case validation.StatusValid:
			report.Summary.Valid++
		case validation.StatusInvalid:
			report.Summary.Invalid++
			report.Summary.Errors += len(r.Errors)
		case validation.StatusIgnored:
			report.Summary.Ignored++
		}
	}

	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			fmt.Fprintf(stderr, "offerfeed validate: %v\n", err)
			return validateUsage
		}
	} else {
		writeValidateText(stdout, report, namespace, verbose)
	}
	if report.Summary.Invalid > 0 {
		return validateInvalid
	}
	return validateOK
}

// writeValidateText writes one line per error (and, verbose, per valid or ignored document) and
// a summary line.
func writeValidateText(w io.Writer, report validateReport, namespace string, verbose bool) {
	for _, r := range report.Documents {
		where := fmt.Sprintf("%s:DOC#%d: ", r.File, r.Document)
		if r.Namespace == "" && r.Kind != "" {
			r.Namespace = namespace
		}
		if obj := r.Object(); obj != "" && r.Status != validation.StatusIgnored {
			where += obj + ": "
		}
		switch r.Status {
		case validation.StatusInvalid:
			for _, e := range r.Errors {
				fmt.Fprintf(w, "%s%s\n", where, e)
			}
		case validation.StatusValid:
			if verbose {
				fmt.Fprintf(w, "%svalid\n", where)
			}
		case validation.StatusIgnored:
			if verbose {
				fmt.Fprintf(w, "%signored: %s\n", where, r.Reason)
			}
		}
	}
	s := report.Summary
	fmt.Fprintf(w, "offerfeed validate: %d %s, %d %s: %d valid, %d invalid (%d %s), %d ignored\n",
		report.Files, plural(report.Files, "file", "files"),
		s.Valid+s.Invalid+s.Ignored, plural(s.Valid+s.Invalid+s.Ignored, "document", "documents"),
		s.Valid, s.Invalid, s.Errors, plural(s.Errors, "error", "errors"), s.Ignored)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
