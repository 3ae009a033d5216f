// Package release checks GoReleaser's output against what the Terraform and OpenTofu registries
// require of a provider release: per platform a zip named <name>_<version>_<os>_<arch>.zip that
// holds the binary <name>_v<version>, a <name>_<version>_SHA256SUMS listing every zip and the
// <name>_<version>_manifest.json, and a manifest declaring protocol version 6.0.
package release

import (
	"archive/zip"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Platform is an os/arch pair the release must carry.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "_" + p.Arch }

// Expect is what a release must hold.
type Expect struct {
	// Name is the project name, terraform-provider-<type>.
	Name string
	// Platforms every release carries.
	Platforms []Platform
	// Manifest is the registry manifest file of the repository (terraform-registry-manifest.json),
	// published as <name>_<version>_manifest.json.
	Manifest string
	// ProtocolVersions the manifest must declare.
	ProtocolVersions []string
}

// Report is what Check found.
type Report struct {
	Version string
	Zips    []string
	Sums    string
}

// Version reads the version GoReleaser built from dist/metadata.json.
func Version(dist string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dist, "metadata.json"))
	if err != nil {
		return "", fmt.Errorf("read release version: %w", err)
	}
	var m struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(data, &m); err != nil || m.Version == "" {
		return "", fmt.Errorf("read release version from %s: no version (%v)", filepath.Join(dist, "metadata.json"), err)
	}
	return m.Version, nil
}

// Check checks the release in dist against want and reports every problem it finds.
func Check(dist string, want Expect) (Report, error) {
	version, err := Version(dist)
	if err != nil {
		return Report{}, err
	}
	r := Report{Version: version, Sums: fmt.Sprintf("%s_%s_SHA256SUMS", want.Name, version)}
	var errs []error
	sums, err := readSums(filepath.Join(dist, r.Sums))
	if err != nil {
		return r, fmt.Errorf("check release %s: %w", version, err)
	}
	listed := map[string]bool{}
	for _, p := range want.Platforms {
		zipName := fmt.Sprintf("%s_%s_%s.zip", want.Name, version, p)
		r.Zips = append(r.Zips, zipName)
		listed[zipName] = true
		zipPath := filepath.Join(dist, zipName)
		if err := checkZip(zipPath, want.Name, version, p); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, checkSum(sums, zipName, zipPath))
	}
	manifestName := fmt.Sprintf("%s_%s_manifest.json", want.Name, version)
	listed[manifestName] = true
	errs = append(errs, checkSum(sums, manifestName, want.Manifest), checkManifest(want.Manifest, want.ProtocolVersions))
	var extra []string
	for name := range sums {
		if !listed[name] {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		errs = append(errs, fmt.Errorf("%s lists files that are not part of the provider release: %s", r.Sums, strings.Join(extra, ", ")))
	}
	if err := errors.Join(errs...); err != nil {
		return r, fmt.Errorf("check release %s:\n%w", version, err)
	}
	return r, nil
}

// checkZip: the archive exists and holds the binary under the name the registry expects.
func checkZip(path, name, version string, p Platform) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return fmt.Errorf("zip for %s: %w", p, err)
	}
	defer zr.Close()
	bin := fmt.Sprintf("%s_v%s", name, version)
	if p.OS == "windows" {
		bin += ".exe"
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if f.Name == bin {
			if f.UncompressedSize64 == 0 {
				return fmt.Errorf("%s: %s is empty", filepath.Base(path), bin)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: no %s at its root (holds %s)", filepath.Base(path), bin, strings.Join(names, ", "))
}

func readSums(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			return nil, fmt.Errorf("%s: line %q is not `<sha256>  <file>`", filepath.Base(path), sc.Text())
		}
		sums[name] = sum
	}
	return sums, sc.Err()
}

func checkSum(sums map[string]string, name, path string) error {
	got, ok := sums[name]
	if !ok {
		return fmt.Errorf("SHA256SUMS does not list %s", name)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if want := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("SHA256SUMS lists %s with %s, the file's is %s", name, got, want)
	}
	return nil
}

func checkManifest(path string, protocols []string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m struct {
		Version  int `json:"version"`
		Metadata struct {
			ProtocolVersions []string `json:"protocol_versions"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("manifest %s: %w", path, err)
	}
	if m.Version != 1 || !slices.Equal(m.Metadata.ProtocolVersions, protocols) {
		return fmt.Errorf("manifest %s: version %d, protocol_versions %q; want version 1, %q", path, m.Version, m.Metadata.ProtocolVersions, protocols)
	}
	return nil
}
