// Command image builds offerfeed's OCI image without a container engine (no Docker, no base
// image to pull): FROM scratch, the static binary at /offerfeed, /etc/passwd and /etc/group
// with the nonroot user 65532, /tmp, the build machine's CA certificates; user 65532,
// entrypoint /offerfeed, no shell; OCI labels. `make image` runs it:
//
//	go run . -binary linux/amd64=../../bin/linux_amd64/offerfeed [-binary linux/arm64=...] \
//	    -repository offerfeed -version v0.1.0 -revision $(git rev-parse HEAD) -created 1767225600 \
//	    -layout ../../dist/oci -tarball ../../dist/offerfeed-v0.1.0.tar [-push REGISTRY/offerfeed:v0.1.0]
//
// -layout writes an OCI image layout (every platform, an index tagged -version), which
// `skopeo copy oci:DIR:TAG docker://...`, `crane push DIR REF` or `oras` push; -tarball writes
// the image of the build machine's platform (else the first) as a `docker load`/`podman load`
// archive; -push writes the index to a registry with the credentials of ~/.docker/config.json.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// binaries is the repeatable -binary PLATFORM=PATH flag.
type binaries map[string]string

func (b binaries) String() string { return fmt.Sprint(map[string]string(b)) }

func (b binaries) Set(s string) error {
	platform, path, ok := strings.Cut(s, "=")
	if !ok || platform == "" || path == "" {
		return fmt.Errorf("want PLATFORM=PATH, e.g. linux/amd64=bin/offerfeed")
	}
	b[platform] = path
	return nil
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	bins := binaries{}
	fs.Var(bins, "binary", "PLATFORM=PATH of a static offerfeed binary (repeatable)")
	repository := fs.String("repository", "offerfeed", "image repository, for the tarball's tag")
	version := fs.String("version", "", "release version (the image tag), e.g. v0.1.0")
	revision := fs.String("revision", "", "source revision (git commit)")
	source := fs.String("source", "https://github.com/offerfeed/offerfeed", "source repository URL")
	created := fs.String("created", "0", "creation time: Unix seconds (e.g. the commit's, for reproducible images) or RFC 3339")
	caCerts := fs.String("ca-certs", "", "PEM bundle of CA certificates to include (e.g. /etc/ssl/certs/ca-certificates.crt)")
	layoutDir := fs.String("layout", "", "write an OCI image layout to this directory")
	tarPath := fs.String("tarball", "", "write a docker-loadable archive of one platform's image to this file")
	push := fs.String("push", "", "push the image index to this reference")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *version == "" {
		return fmt.Errorf("-version is required")
	}
	t, err := parseTime(*created)
	if err != nil {
		return err
	}
	labels := map[string]string{
		"org.opencontainers.image.title":       "offerfeed",
		"org.opencontainers.image.description": "offerfeed: the OfferFeedPolicy operator (offerfeed manager) and its gateway sidecar (offerfeed gateway)",
		"org.opencontainers.image.version":     *version,
		"org.opencontainers.image.source":      *source,
		"org.opencontainers.image.created":     t.UTC().Format(time.RFC3339),
	}
	if *revision != "" {
		labels["org.opencontainers.image.revision"] = *revision
	}
	idx, images, err := Build(Spec{Binaries: bins, CACerts: *caCerts, Created: t, Labels: labels})
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "index %s (%d platforms)\n", digest, len(images))

	if *layoutDir != "" {
		if err := os.RemoveAll(*layoutDir); err != nil {
			return err
		}
		p, err := layout.Write(*layoutDir, empty.Index)
		if err != nil {
			return err
		}
		if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": *version})); err != nil {
			return err
		}
		fmt.Fprintf(out, "OCI layout %s (tag %s)\n", *layoutDir, *version)
	}
	if *tarPath != "" {
		platform := runtime.GOOS + "/" + runtime.GOARCH
		img, ok := images[platform]
		if !ok {
			for _, p := range sortedPlatforms(images) {
				platform, img = p, images[p]
				break
			}
		}
		tag, err := name.NewTag(*repository + ":" + *version)
		if err != nil {
			return err
		}
		if err := tarball.WriteToFile(*tarPath, tag, img); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s archive %s (%s)\n", platform, *tarPath, tag)
	}
	if *push != "" {
		ref, err := name.ParseReference(*push)
		if err != nil {
			return err
		}
		if err := remote.WriteIndex(ref, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("pushing %s: %w", ref, err)
		}
		fmt.Fprintf(out, "pushed %s@%s\n", ref, digest)
	}
	return nil
}

// parseTime reads Unix seconds or RFC 3339.
func parseTime(s string) (time.Time, error) {
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(secs, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("-created %q: want Unix seconds or RFC 3339", s)
	}
	return t, nil
}

func sortedPlatforms(images map[string]v1.Image) []string {
	out := make([]string, 0, len(images))
	for p := range images {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}
