package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strconv"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// versionInfo is what offerfeed version prints: the build information the Go toolchain
// records in the binary.
type versionInfo struct {
	// Version is the module version: v0.1.0 for `go install ...@v0.1.0` or a build in a git
	// clone at tag v0.1.0, a pseudo-version (+dirty with uncommitted changes), or (devel) for
	// a build without VCS information.
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from (vcs.revision), when known.
	Revision string `json:"revision,omitempty"`
	// Time is the commit's time (vcs.time, RFC 3339), when known.
	Time string `json:"time,omitempty"`
	// Modified says whether the work tree had uncommitted changes (vcs.modified), when known.
	Modified *bool `json:"modified,omitempty"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"goVersion"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
}

// buildVersion reads versionInfo from the binary's build information; bi may be nil.
func buildVersion(bi *debug.BuildInfo, ok bool) versionInfo {
	v := versionInfo{Version: "unknown", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if !ok || bi == nil {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		v.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			if m, err := strconv.ParseBool(s.Value); err == nil {
				v.Modified = &m
			}
		}
	}
	return v
}

// versionOptions are the flags of offerfeed version.
type versionOptions struct {
	output string
}

func newVersionCommand() *cobra.Command {
	o := &versionOptions{}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "print the version, the commit and the Go version of this binary",
		Args:  noArgs(""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.OutOrStdout(), buildVersion(debug.ReadBuildInfo()))
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "output format: json or yaml (default: one line per field)")
	return cmd
}

func (o *versionOptions) run(w io.Writer, v versionInfo) error {
	switch o.output {
	case "json":
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case "":
		fmt.Fprintf(w, "version:   %s\n", v.Version)
		if v.Revision != "" {
			fmt.Fprintf(w, "revision:  %s\n", v.Revision)
		}
		if v.Time != "" {
			fmt.Fprintf(w, "time:      %s\n", v.Time)
		}
		if v.Modified != nil {
			fmt.Fprintf(w, "modified:  %t\n", *v.Modified)
		}
		fmt.Fprintf(w, "go:        %s\n", v.GoVersion)
		_, err := fmt.Fprintf(w, "platform:  %s\n", v.Platform)
		return err
	default:
		return usageErrorf("--output must be json or yaml, not %q", o.output)
	}
}
