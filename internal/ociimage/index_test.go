package ociimage

import (
	"archive/tar"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func writeBinary(t *testing.T, dir, content string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), dir, "kagenti-router")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// loopbackRef starts go-containerregistry's in-memory registry on loopback and returns a
// reference in it.
func loopbackRef(t *testing.T, repoTag string) name.Reference {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func routerSpecs(t *testing.T, version string) []Spec {
	labels := map[string]string{"org.opencontainers.image.version": version}
	return []Spec{
		{Binary: writeBinary(t, "amd64", "amd64 binary"), OS: "linux", Arch: "amd64", Port: 8080, Labels: labels},
		{Binary: writeBinary(t, "arm64", "arm64 binary"), OS: "linux", Arch: "arm64", Port: 8080, Labels: labels},
	}
}

// TestPushVerify: the index pushed to a registry on loopback comes back with both platforms,
// each image holding its own binary, nonroot, with the entrypoint and the version label.
func TestPushVerify(t *testing.T) {
	ctx := context.Background()
	ref := loopbackRef(t, "kagenti/kagenti-router:1.2.3")
	idx, err := BuildIndex(routerSpecs(t, "1.2.3"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Push(ctx, ref, idx); err != nil {
		t.Fatal(err)
	}
	want := Want{Platforms: []string{"linux/amd64", "linux/arm64"}, Entrypoint: []string{"/kagenti-router"},
		Labels: map[string]string{"org.opencontainers.image.version": "1.2.3"}}
	report, err := Verify(ctx, ref, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(report) != 2 {
		t.Fatalf("report %q, want one line per platform", report)
	}
	// A runtime on an arm64 node gets the arm64 binary.
	img, err := remote.Image(ref, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := extractBinary(t, img); got != "arm64 binary" {
		t.Fatalf("arm64 image holds %q", got)
	}
}

// TestVerify_Mismatch: each way a published index can be wrong is reported.
func TestVerify_Mismatch(t *testing.T) {
	ctx := context.Background()
	tests := map[string]struct {
		specs   func(t *testing.T) []Spec
		want    Want
		wantErr string
	}{
		"a missing platform is reported": {
			specs:   func(t *testing.T) []Spec { return routerSpecs(t, "1.0.0")[:1] },
			want:    Want{Platforms: []string{"linux/amd64", "linux/arm64"}, Entrypoint: []string{"/kagenti-router"}},
			wantErr: "platform linux/arm64 missing",
		},
		"an image running as root is reported": {
			specs: func(t *testing.T) []Spec {
				s := routerSpecs(t, "1.0.0")
				s[0].User = "0:0"
				return s
			},
			want:    Want{Platforms: []string{"linux/amd64"}, Entrypoint: []string{"/kagenti-router"}},
			wantErr: "runs as root",
		},
		"a wrong version label is reported": {
			specs:   func(t *testing.T) []Spec { return routerSpecs(t, "1.0.0") },
			want:    Want{Entrypoint: []string{"/kagenti-router"}, Labels: map[string]string{"org.opencontainers.image.version": "2.0.0"}},
			wantErr: `label org.opencontainers.image.version = "1.0.0", want "2.0.0"`,
		},
		"a wrong entrypoint is reported": {
			specs:   func(t *testing.T) []Spec { return routerSpecs(t, "1.0.0") },
			want:    Want{Entrypoint: []string{"/router"}},
			wantErr: "entrypoint",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ref := loopbackRef(t, "kagenti/kagenti-router:1.0.0")
			idx, err := BuildIndex(tc.specs(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := Push(ctx, ref, idx); err != nil {
				t.Fatal(err)
			}
			_, err = Verify(ctx, ref, tc.want)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Verify error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestBuildIndex_DuplicatePlatform: two binaries for one platform are refused rather than
// leaving the runtime to pick one.
func TestBuildIndex_DuplicatePlatform(t *testing.T) {
	s := routerSpecs(t, "1.0.0")
	s[1].Arch = "amd64"
	if _, err := BuildIndex(s); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Fatalf("error %v, want platform given twice", err)
	}
}

// extractBinary reads the router binary out of an image's filesystem.
func extractBinary(t *testing.T, img v1.Image) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no kagenti-router in the image: %v", err)
		}
		if h.Name == "kagenti-router" {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(data)
		}
	}
}
