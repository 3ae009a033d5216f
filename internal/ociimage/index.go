package ociimage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BuildIndex builds one image per spec and returns them as an OCI image index, each manifest
// annotated with its platform so that a runtime pulls the one for its node.
func BuildIndex(specs []Spec) (v1.ImageIndex, error) {
	if len(specs) == 0 {
		return nil, errors.New("build image index: no platforms")
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	seen := map[string]bool{}
	for _, s := range specs {
		p := s.OS + "/" + s.Arch
		if seen[p] {
			return nil, fmt.Errorf("build image index: platform %s given twice", p)
		}
		seen[p] = true
		img, err := Build(s)
		if err != nil {
			return nil, fmt.Errorf("build image index: %s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: s.OS, Architecture: s.Arch}},
		})
	}
	return idx, nil
}

// Push writes the index and its images to ref. Credentials come from the Docker config
// (~/.docker/config.json, $DOCKER_CONFIG), as `docker login` or docker/login-action leave them;
// a registry on loopback is spoken to over plain HTTP.
func Push(ctx context.Context, ref name.Reference, idx v1.ImageIndex) error {
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// Want is what a published image index must hold.
type Want struct {
	// Platforms as os/arch, e.g. linux/amd64.
	Platforms []string
	// Entrypoint of every image.
	Entrypoint []string
	// Labels every image carries with these values.
	Labels map[string]string
}

// Verify pulls the index at ref back and checks it against want: every platform present, each
// image with the entrypoint, the labels and a user other than root. It returns what it found, one
// line per platform.
func Verify(ctx context.Context, ref name.Reference, want Want) ([]string, error) {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	idx, err := remote.Index(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("pull index %s: %w", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read index %s: %w", ref, err)
	}
	var found, report []string
	var errs []error
	for _, m := range im.Manifests {
		if m.Platform == nil {
			errs = append(errs, fmt.Errorf("manifest %s has no platform", m.Digest))
			continue
		}
		p := m.Platform.OS + "/" + m.Platform.Architecture
		found = append(found, p)
		img, err := remote.Image(ref.Context().Digest(m.Digest.String()), opts...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: pull image: %w", p, err))
			continue
		}
		cf, err := img.ConfigFile()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: read config: %w", p, err))
			continue
		}
		if cf.OS+"/"+cf.Architecture != p {
			errs = append(errs, fmt.Errorf("%s: image config says %s/%s", p, cf.OS, cf.Architecture))
		}
		if isRoot(cf.Config.User) {
			errs = append(errs, fmt.Errorf("%s: runs as root (user %q)", p, cf.Config.User))
		}
		if !slices.Equal(cf.Config.Entrypoint, want.Entrypoint) {
			errs = append(errs, fmt.Errorf("%s: entrypoint %q, want %q", p, cf.Config.Entrypoint, want.Entrypoint))
		}
		for k, v := range want.Labels {
			if got := cf.Config.Labels[k]; got != v {
				errs = append(errs, fmt.Errorf("%s: label %s = %q, want %q", p, k, got, v))
			}
		}
		report = append(report, fmt.Sprintf("%s %s user=%s entrypoint=%s version=%s", p, m.Digest,
			cf.Config.User, strings.Join(cf.Config.Entrypoint, " "), cf.Config.Labels["org.opencontainers.image.version"]))
	}
	for _, p := range want.Platforms {
		if !slices.Contains(found, p) {
			errs = append(errs, fmt.Errorf("platform %s missing (index has %v)", p, found))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return report, fmt.Errorf("verify %s: %w", ref, err)
	}
	return report, nil
}

// isRoot says whether an image user runs as root: empty, "root", or uid 0 (with any group).
func isRoot(user string) bool {
	u, _, _ := strings.Cut(user, ":")
	return u == "" || u == "root" || u == "0"
}
