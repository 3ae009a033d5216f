package release

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// providerPlatforms are the platforms .goreleaser.yml builds the provider for.
var providerPlatforms = func() []Platform {
	var ps []Platform
	for _, goos := range []string{"darwin", "freebsd", "linux", "windows"} {
		for _, arch := range []string{"amd64", "arm64"} {
			ps = append(ps, Platform{goos, arch})
		}
	}
	return ps
}()

// TestSnapshot checks the release `make release-snapshot` left in $KAGENTI_RELEASE_DIST
// (`make release-check` runs it; skipped otherwise).
func TestSnapshot(t *testing.T) {
	dist := os.Getenv("KAGENTI_RELEASE_DIST")
	if dist == "" {
		t.Skip("KAGENTI_RELEASE_DIST is not set: run `make release-check`")
	}
	r, err := Check(dist, Expect{Name: "terraform-provider-kagenti", Platforms: providerPlatforms,
		Manifest: "../../terraform-registry-manifest.json", ProtocolVersions: []string{"6.0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("release %s: %s lists %d zips and the manifest", r.Version, r.Sums, len(r.Zips))
}

// fakeDist writes a release for linux/amd64 and windows/arm64 in the registry's layout, then
// lets mutate break it.
func fakeDist(t *testing.T, mutate func(dist string, sums map[string]string)) (string, Expect) {
	t.Helper()
	dist := t.TempDir()
	manifest := filepath.Join(t.TempDir(), "terraform-registry-manifest.json")
	write(t, manifest, `{"version": 1, "metadata": {"protocol_versions": ["6.0"]}}`)
	write(t, filepath.Join(dist, "metadata.json"), `{"project_name":"terraform-provider-x","version":"1.2.3"}`)
	want := Expect{Name: "terraform-provider-x", Platforms: []Platform{{"linux", "amd64"}, {"windows", "arm64"}},
		Manifest: manifest, ProtocolVersions: []string{"6.0"}}
	sums := map[string]string{}
	for _, p := range want.Platforms {
		bin := "terraform-provider-x_v1.2.3"
		if p.OS == "windows" {
			bin += ".exe"
		}
		name := "terraform-provider-x_1.2.3_" + p.String() + ".zip"
		writeZip(t, filepath.Join(dist, name), map[string]string{bin: "binary", "LICENSE": "Apache-2.0"})
		sums[name] = fileSum(t, filepath.Join(dist, name))
	}
	sums["terraform-provider-x_1.2.3_manifest.json"] = fileSum(t, manifest)
	if mutate != nil {
		mutate(dist, sums)
	}
	var lines []string
	for name, sum := range sums {
		lines = append(lines, sum+"  "+name)
	}
	write(t, filepath.Join(dist, "terraform-provider-x_1.2.3_SHA256SUMS"), strings.Join(lines, "\n")+"\n")
	return dist, want
}

func TestCheck(t *testing.T) {
	tests := map[string]struct {
		reason  string
		mutate  func(dist string, sums map[string]string)
		wantErr string
	}{
		"a release in the registry's layout passes": {},
		"a missing platform zip is reported": {
			mutate: func(dist string, sums map[string]string) {
				os.Remove(filepath.Join(dist, "terraform-provider-x_1.2.3_linux_amd64.zip"))
			},
			wantErr: "zip for linux_amd64",
		},
		"a binary without the v-prefixed version is reported": {
			reason: "the registry runs terraform-provider-<type>_v<version> and finds nothing else",
			mutate: func(dist string, sums map[string]string) {
				name := "terraform-provider-x_1.2.3_linux_amd64.zip"
				writeZip(t, filepath.Join(dist, name), map[string]string{"terraform-provider-x": "binary"})
				sums[name] = fileSum(t, filepath.Join(dist, name))
			},
			wantErr: "no terraform-provider-x_v1.2.3 at its root",
		},
		"a zip missing from SHA256SUMS is reported": {
			mutate: func(dist string, sums map[string]string) {
				delete(sums, "terraform-provider-x_1.2.3_windows_arm64.zip")
			},
			wantErr: "SHA256SUMS does not list terraform-provider-x_1.2.3_windows_arm64.zip",
		},
		"a wrong checksum is reported": {
			mutate: func(dist string, sums map[string]string) {
				sums["terraform-provider-x_1.2.3_linux_amd64.zip"] = strings.Repeat("0", 64)
			},
			wantErr: "the file's is",
		},
		"the manifest missing from SHA256SUMS is reported": {
			mutate: func(dist string, sums map[string]string) {
				delete(sums, "terraform-provider-x_1.2.3_manifest.json")
			},
			wantErr: "SHA256SUMS does not list terraform-provider-x_1.2.3_manifest.json",
		},
		"a file that is not part of the release in SHA256SUMS is reported": {
			mutate: func(dist string, sums map[string]string) {
				sums["kagenti-router_1.2.3_linux_amd64.tar"] = strings.Repeat("1", 64)
			},
			wantErr: "not part of the provider release: kagenti-router_1.2.3_linux_amd64.tar",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dist, want := fakeDist(t, tc.mutate)
			_, err := Check(dist, want)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("%s: error %v, want one containing %q", tc.reason, err, tc.wantErr)
			}
		})
	}
}

// TestCheck_Manifest: a manifest that declares another protocol is refused.
func TestCheck_Manifest(t *testing.T) {
	dist, want := fakeDist(t, nil)
	write(t, want.Manifest, `{"version": 1, "metadata": {"protocol_versions": ["5.0"]}}`)
	_, err := Check(dist, want)
	if err == nil || !strings.Contains(err.Error(), `protocol_versions ["5.0"]`) {
		t.Fatalf("error %v, want the manifest's protocol versions", err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeZip(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, content := range files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.Unix(0, 0)})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(w, content)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}
