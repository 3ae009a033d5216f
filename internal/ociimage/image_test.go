package ociimage

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TestBuild: the image holds exactly the binary at /<name>, runs it as nonroot, and two builds
// of the same binary have the same digest.
func TestBuild(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kagenti-router")
	if err := os.WriteFile(bin, []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Binary: bin, OS: "linux", Arch: "amd64", Port: 8080, Labels: map[string]string{"org.opencontainers.image.version": "test"}}
	img, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.Entrypoint[0] != "/kagenti-router" || cf.Config.User != "65532:65532" || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Fatalf("config %+v", cf)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var files []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, h.Name)
		if h.Name == "kagenti-router" {
			data, _ := io.ReadAll(tr)
			if string(data) != "#!binary" || h.Mode&0o111 == 0 {
				t.Fatalf("binary in image: %q mode %o", data, h.Mode)
			}
		}
	}
	if len(files) != 1 {
		t.Fatalf("image files %v, want only the binary", files)
	}
	again, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Fatalf("not reproducible: %s != %s", d1, d2)
	}
}
