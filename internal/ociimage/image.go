// Package ociimage builds a minimal OCI image — one static binary on an empty base — without a
// container daemon, with go-containerregistry.
package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Spec describes the image.
type Spec struct {
	// Binary is the static executable to put at /<name>.
	Binary string
	// Platform is the binary's OS and architecture.
	OS, Arch string
	// User runs the binary (nonroot by default).
	User string
	// Port is documented as exposed.
	Port int
	// Labels are OCI image labels (version, source, ...).
	Labels map[string]string
}

// epoch makes builds reproducible: the same binary gives the same digest.
var epoch = time.Unix(0, 0).UTC()

// Build returns the image.
func Build(s Spec) (v1.Image, error) {
	data, err := os.ReadFile(s.Binary)
	if err != nil {
		return nil, err
	}
	name := "/" + path.Base(s.Binary)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name[1:], Mode: 0o555, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "kagenti-image"}})
	if err != nil {
		return nil, err
	}
	user := s.User
	if user == "" {
		user = "65532:65532"
	}
	cfg := v1.Config{Entrypoint: []string{name}, User: user, Labels: s.Labels}
	if s.Port != 0 {
		cfg.ExposedPorts = map[string]struct{}{fmt.Sprintf("%d/tcp", s.Port): {}}
	}
	img, err = mutate.Config(img, cfg)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = s.OS, s.Arch, v1.Time{Time: epoch}
	return mutate.ConfigFile(img, cf)
}
