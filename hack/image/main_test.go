package main

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fixture writes a distinct stand-in binary per platform and a CA bundle.
type fixture struct {
	dir      string
	binaries map[string][]byte
	caCerts  []byte
	args     []string // -binary flags
}

func newFixture(t *testing.T, platforms ...string) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), binaries: map[string][]byte{}, caCerts: []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")}
	for _, p := range platforms {
		b := make([]byte, 4096)
		rand.Read(b)
		path := filepath.Join(f.dir, strings.ReplaceAll(p, "/", "_"))
		if err := os.WriteFile(path, b, 0o755); err != nil {
			t.Fatal(err)
		}
		f.binaries[p] = b
		f.args = append(f.args, "-binary", p+"="+path)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "ca.crt"), f.caCerts, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) run(t *testing.T, extra ...string) {
	t.Helper()
	args := append(slices.Clone(f.args), "-version", "v1.2.3", "-revision", "abc123", "-created", "1767225600",
		"-ca-certs", filepath.Join(f.dir, "ca.crt"))
	if err := run(append(args, extra...), io.Discard); err != nil {
		t.Fatal(err)
	}
}

// files reads every entry of img's layers.
type entry struct {
	hdr  *tar.Header
	data []byte
}

func files(t *testing.T, img v1.Image, oci bool) map[string]entry {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]entry{}
	for _, l := range layers {
		if mt, _ := l.MediaType(); oci && mt != types.OCILayer {
			t.Errorf("layer media type %s", mt)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(tr)
			out["/"+strings.TrimSuffix(h.Name, "/")] = entry{h, data}
		}
		rc.Close()
	}
	return out
}

// checkImage checks one platform's image: config, labels, and layer contents; and OCI media
// types unless it was read from a docker archive (whose format has docker's).
func checkImage(t *testing.T, img v1.Image, platform string, f *fixture, oci bool) {
	t.Helper()
	if mt, _ := img.MediaType(); oci && mt != types.OCIManifestSchema1 {
		t.Errorf("%s: manifest media type %s", platform, mt)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.OS + "/" + cf.Architecture; got != platform {
		t.Errorf("config platform %s, want %s", got, platform)
	}
	c := cf.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/offerfeed"}) {
		t.Errorf("%s: user %q entrypoint %q", platform, c.User, c.Entrypoint)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.title":    "offerfeed",
		"org.opencontainers.image.version":  "v1.2.3",
		"org.opencontainers.image.revision": "abc123",
		"org.opencontainers.image.created":  "2026-01-01T00:00:00Z",
		"org.opencontainers.image.source":   "https://github.com/offerfeed/offerfeed",
	} {
		if c.Labels[k] != v {
			t.Errorf("%s: label %s = %q, want %q", platform, k, c.Labels[k], v)
		}
	}
	if !cf.Created.Equal(time.Unix(1767225600, 0)) {
		t.Errorf("created %v", cf.Created)
	}

	fs := files(t, img, oci)
	bin, ok := fs["/offerfeed"]
	if !ok {
		t.Fatalf("%s: no /offerfeed", platform)
	}
	if bin.hdr.Typeflag != tar.TypeReg || bin.hdr.Mode != 0o755 || bin.hdr.Uid != 0 || !bytes.Equal(bin.data, f.binaries[platform]) {
		t.Errorf("%s: /offerfeed mode %o uid %d, same bytes as the %s binary: %v", platform, bin.hdr.Mode, bin.hdr.Uid, platform, bytes.Equal(bin.data, f.binaries[platform]))
	}
	if !strings.Contains(string(fs["/etc/passwd"].data), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd %q has no nonroot 65532", fs["/etc/passwd"].data)
	}
	if home := fs["/home/nonroot"]; home.hdr == nil || home.hdr.Uid != 65532 || home.hdr.Typeflag != tar.TypeDir {
		t.Errorf("/home/nonroot: %+v", home.hdr)
	}
	if tmp := fs["/tmp"]; tmp.hdr == nil || tmp.hdr.Mode != 0o1777 {
		t.Errorf("/tmp: %+v", tmp.hdr)
	}
	if !bytes.Equal(fs["/etc/ssl/certs/ca-certificates.crt"].data, f.caCerts) {
		t.Errorf("CA certificates not copied")
	}
	// No shell, nor anything else that is not ours.
	want := []string{"/etc", "/etc/group", "/etc/passwd", "/etc/ssl", "/etc/ssl/certs", "/etc/ssl/certs/ca-certificates.crt",
		"/home", "/home/nonroot", "/offerfeed", "/tmp"}
	var got []string
	for p, e := range fs {
		got = append(got, p)
		base := filepath.Base(p)
		if base == "sh" || base == "bash" || base == "ash" || base == "dash" || base == "busybox" || e.hdr.Typeflag == tar.TypeSymlink {
			t.Errorf("%s: %s in the image", platform, p)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s: files %q, want %q", platform, got, want)
	}
}

// TestLayoutAndTarball: the OCI layout holds an index, tagged with the version, of one image
// per platform, each with its own binary; the tarball holds the image of this machine's
// platform, with the same digest.
func TestLayoutAndTarball(t *testing.T) {
	host := runtime.GOOS + "/" + runtime.GOARCH
	f := newFixture(t, "linux/amd64", "linux/arm64", host)
	dir, tarPath := filepath.Join(f.dir, "oci"), filepath.Join(f.dir, "image.tar")
	f.run(t, "-layout", dir, "-tarball", tarPath, "-repository", "registry.example.com/offerfeed")

	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v1.2.3" {
		t.Fatalf("layout index %+v: want one index tagged v1.2.3", im.Manifests)
	}
	idx, err := top.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := idx.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("index media type %s", mt)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Annotations["org.opencontainers.image.version"] != "v1.2.3" {
		t.Errorf("index annotations %v", m.Annotations)
	}
	platforms := map[string]v1.Hash{}
	for _, d := range m.Manifests {
		p := d.Platform.OS + "/" + d.Platform.Architecture
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, img, p, f, true)
		platforms[p] = d.Digest
	}
	if len(platforms) != len(f.binaries) {
		t.Errorf("platforms %v, want %d", platforms, len(f.binaries))
	}

	tag, _ := name.NewTag("registry.example.com/offerfeed:v1.2.3")
	img, err := tarball.ImageFromPath(tarPath, &tag)
	if err != nil {
		t.Fatal(err)
	}
	// The tarball keeps the layers and config, so its image is the index's one for this platform.
	cfgName, _ := img.ConfigName()
	want, _ := idx.Image(platforms[host])
	wantCfg, _ := want.ConfigName()
	if cfgName != wantCfg {
		t.Errorf("tarball config %s, want %s's %s", cfgName, host, wantCfg)
	}
	checkImage(t, img, host, f, false)
}

// TestReproducible: the same inputs give the same digests; another creation time another.
func TestReproducible(t *testing.T) {
	f := newFixture(t, "linux/amd64")
	spec := Spec{Binaries: map[string]string{}, Created: time.Unix(1767225600, 0), Labels: map[string]string{"a": "b"}}
	for p := range f.binaries {
		spec.Binaries[p] = filepath.Join(f.dir, strings.ReplaceAll(p, "/", "_"))
	}
	digest := func(s Spec) v1.Hash {
		idx, _, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		d, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, b := digest(spec), digest(spec)
	if a != b {
		t.Errorf("two builds: %s and %s", a, b)
	}
	spec.Created = spec.Created.Add(time.Second)
	if c := digest(spec); c == a {
		t.Errorf("another creation time gives the same digest %s", c)
	}
}

// TestPush pushes the index to a registry on loopback (go-containerregistry's registry
// implementation) and reads it back by tag.
func TestPush(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/offerfeed:v1.2.3"
	f := newFixture(t, "linux/amd64", "linux/arm64")
	dir := filepath.Join(f.dir, "oci")
	f.run(t, "-push", ref, "-layout", dir)

	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := remote.Index(r)
	if err != nil {
		t.Fatal(err)
	}
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := top.IndexManifest()
	if got, _ := pushed.Digest(); got != im.Manifests[0].Digest {
		t.Errorf("pushed index %s, built %s", got, im.Manifests[0].Digest)
	}
	m, _ := pushed.IndexManifest()
	for _, d := range m.Manifests {
		img, err := pushed.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, img, d.Platform.OS+"/"+d.Platform.Architecture, f, true)
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t, "linux/amd64")
	for _, args := range [][]string{
		{"-version", "v1"},                           // no binary
		slices.Clone(f.args),                         // no version
		{"-binary", "linux/amd64", "-version", "v1"}, // no path
		{"-binary", "windows/amd64=" + filepath.Join(f.dir, "linux_amd64"), "-version", "v1"},
		{"-binary", "linux/amd64=/no/such/file", "-version", "v1"},
		append(slices.Clone(f.args), "-version", "v1", "-created", "yesterday"),
		append(slices.Clone(f.args), "-version", "v1", "-ca-certs", "/no/such/file"),
	} {
		if err := run(args, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
