package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed parts. The uid and gid are distroless' "nonroot", which the manager
// Deployment and the injected sidecar run as (runAsNonRoot).
const (
	BinaryPath = "/offerfeed"
	UID        = 65532
	User       = "65532:65532"
	// CACertsPath is where Go (and most TLS stacks) look for the system's CA certificates.
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
)

// Spec says what goes into the image.
type Spec struct {
	// Binaries maps a platform ("linux/amd64") to the static offerfeed binary built for it.
	Binaries map[string]string
	// CACerts is a PEM bundle copied to CACertsPath; empty leaves the image without one.
	CACerts string
	// Created is the image's creation time and every file's modification time (for
	// reproducible builds: the time of the commit).
	Created time.Time
	// Labels are the image's config labels and the manifests' annotations
	// (org.opencontainers.image.*).
	Labels map[string]string
}

// file is one entry of the image's only layer.
type file struct {
	name string // without the leading '/'
	mode int64
	uid  int
	data []byte // nil for a directory
}

// Layer returns the image's only layer for binary: the binary at BinaryPath, /etc/passwd and
// /etc/group with root and nonroot, CA certificates when caCerts is not nil, /tmp and the
// nonroot home. No shell, no package manager, nothing else. Its entries are sorted and dated
// created, so the same inputs give the same layer digest.
func Layer(binary, caCerts []byte, created time.Time) (v1.Layer, error) {
	files := []file{
		{name: "etc/", mode: 0o755},
		{name: "etc/passwd", mode: 0o644, data: []byte(fmt.Sprintf(
			"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, UID))},
		{name: "etc/group", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", UID))},
		{name: "home/", mode: 0o755},
		{name: "home/nonroot/", mode: 0o700, uid: UID},
		{name: "tmp/", mode: 0o1777},
		{name: strings.TrimPrefix(BinaryPath, "/"), mode: 0o755, data: binary},
	}
	if caCerts != nil {
		files = append(files,
			file{name: "etc/ssl/", mode: 0o755},
			file{name: "etc/ssl/certs/", mode: 0o755},
			file{name: strings.TrimPrefix(CACertsPath, "/"), mode: 0o644, data: caCerts})
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: created.UTC(),
			Format: tar.FormatPAX, Typeflag: tar.TypeReg, Size: int64(len(f.data)),
		}
		if f.data == nil {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if f.uid == UID {
			h.Uname, h.Gname = "nonroot", "nonroot"
		} else {
			h.Uname, h.Gname = "root", "root"
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layer)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// Image returns the image for one platform ("linux/amd64"): FROM scratch, the layer of Layer,
// user 65532, entrypoint /offerfeed, OCI media types.
func Image(platform string, binary, caCerts []byte, created time.Time, labels map[string]string) (v1.Image, error) {
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, fmt.Errorf("platform %q: %w", platform, err)
	}
	if p.OS != "linux" || p.Architecture == "" {
		return nil, fmt.Errorf("platform %q: want linux/ARCH", platform)
	}
	layer, err := Layer(binary, caCerts, created)
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: created}, CreatedBy: "hack/image: offerfeed binary, passwd, group, tmp, CA certificates", Comment: "FROM scratch"},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		User:       User,
		Entrypoint: []string{BinaryPath},
		Cmd:        []string{"help"},
		WorkingDir: "/",
		Labels:     labels,
	}
	if caCerts != nil {
		cf.Config.Env = []string{"SSL_CERT_FILE=" + CACertsPath}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, labels).(v1.Image), nil
}

// Build returns the multi-platform index of spec's images, and each image by platform.
func Build(spec Spec) (v1.ImageIndex, map[string]v1.Image, error) {
	if len(spec.Binaries) == 0 {
		return nil, nil, fmt.Errorf("no binary")
	}
	var caCerts []byte
	if spec.CACerts != "" {
		b, err := os.ReadFile(spec.CACerts)
		if err != nil {
			return nil, nil, fmt.Errorf("CA certificates: %w", err)
		}
		caCerts = b
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	images := map[string]v1.Image{}
	for _, platform := range slices.Sorted(maps.Keys(spec.Binaries)) {
		bin, err := os.ReadFile(spec.Binaries[platform])
		if err != nil {
			return nil, nil, fmt.Errorf("binary for %s: %w", platform, err)
		}
		img, err := Image(platform, bin, caCerts, spec.Created, spec.Labels)
		if err != nil {
			return nil, nil, err
		}
		p, _ := v1.ParsePlatform(platform)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
		images[platform] = img
	}
	return mutate.Annotations(idx, spec.Labels).(v1.ImageIndex), images, nil
}
