package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/offerfeed/offerfeed/internal/manifest"
	"github.com/offerfeed/offerfeed/internal/validation"
)

// Exit codes of offerfeed validate.
const (
	validateInvalid = ExitFailed // a policy is invalid, or a document does not parse
	validateUsage   = ExitUsage  // usage error, or a file that cannot be read
)

// validateOptions are the flags of offerfeed validate.
type validateOptions struct {
	manifestOptions
	// verbose lists valid and ignored documents too (text output).
	verbose bool
}

func newValidateCommand() *cobra.Command {
	o := &validateOptions{}
	cmd := &cobra.Command{
		Use:   "validate -f FILE|DIR [-f ...]",
		Short: "check OfferFeedPolicy manifests offline against the API server's rules",
		Long: `Checks OfferFeedPolicy manifests offline against the rules the API server enforces: the
CRD's OpenAPI schema, its CEL rules and strict field validation, with the API server's own
code. Documents of other kinds are ignored.

Output: FILE:DOC#N: KIND/NAMESPACE/NAME: FIELD: MESSAGE for each error, then a summary.
Exit status: 0 all valid, 1 a policy is invalid or a document does not parse,
2 usage error or unreadable file.`,
		Example: `  offerfeed validate -f policies/
  kustomize build deploy/ | offerfeed validate -f - -n offers -o json`,
		Args: noArgs("name files with -f"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	o.addFlags(fs, "", "namespace assumed for policies that name none, as with kubectl apply -n (default: validated as in \"default\")",
		[]string{"text", "json", "yaml"}, "text is one line per error and a summary, json and yaml a report of every document",
		map[string]string{"v": "verbose"})
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "also list valid and ignored documents (text output)")
	return cmd
}

// validateReport is the document of --output json and yaml.
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

func (o *validateOptions) run(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	namespace := o.namespace
	paths, err := manifest.Files(o.filenames)
	if err != nil {
		return exitWith(validateUsage, err)
	}
	v, err := validation.New()
	if err != nil {
		return exitWith(validateUsage, fmt.Errorf("loading the CRDs: %w", err))
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
			return exitWith(validateUsage, err)
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

	switch o.output {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return exitWith(validateUsage, err)
		}
	case "yaml":
		b, err := yaml.Marshal(report)
		if err != nil {
			return exitWith(validateUsage, err)
		}
		if _, err := stdout.Write(b); err != nil {
			return exitWith(validateUsage, err)
		}
	default:
		writeValidateText(stdout, report, namespace, o.verbose)
	}
	if report.Summary.Invalid > 0 {
		return exitWith(validateInvalid, nil)
	}
	return nil
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
