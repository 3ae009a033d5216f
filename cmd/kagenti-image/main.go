// Command kagenti-image packs static binaries into OCI images (empty base, nonroot) with no
// container daemon.
//
// With one -binary it writes that image as an OCI layout directory and/or a tarball that
// `docker load` / `podman load` accept (`make router-image`).
//
// With -platform os/arch=path (repeated) or -artifacts (GoReleaser's dist/artifacts.json) it
// builds a multi-platform image index, and -push writes it to the registry of -tag; -verify pulls
// it back and checks every platform, the nonroot user, the entrypoint and the version label.
// -loopback-registry runs an in-memory registry on 127.0.0.1 for the run and pushes there
// instead (`make release-snapshot`).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kagenti/terraform-provider-kagenti/internal/ociimage"
)

type platformFlags []string

func (p *platformFlags) String() string     { return strings.Join(*p, ",") }
func (p *platformFlags) Set(v string) error { *p = append(*p, v); return nil }

type options struct {
	binary, tag, arch, version, ociDir, tarPath string
	port                                        int
	platforms                                   platformFlags
	artifacts, buildID                          string
	push, verify, loopback                      bool
}

func main() {
	var o options
	flag.StringVar(&o.binary, "binary", "", "static binary to pack as a single image")
	flag.StringVar(&o.tag, "tag", "", "image reference, e.g. ghcr.io/kagenti/kagenti-router:0.1.0")
	flag.StringVar(&o.arch, "arch", runtime.GOARCH, "architecture of -binary")
	flag.StringVar(&o.version, "version", "dev", "version label (org.opencontainers.image.version)")
	flag.StringVar(&o.ociDir, "oci-layout", "", "write the image (or index) as an OCI image layout here")
	flag.StringVar(&o.tarPath, "tar", "", "write a loadable tarball of -binary's image here")
	flag.IntVar(&o.port, "port", 8080, "port the binary serves")
	flag.Var(&o.platforms, "platform", "os/arch=path of a binary for the image index (repeatable)")
	flag.StringVar(&o.artifacts, "artifacts", "", "GoReleaser's dist/artifacts.json: take the index's linux binaries of -build-id from it")
	flag.StringVar(&o.buildID, "build-id", "router", "GoReleaser build id of the binaries in -artifacts")
	flag.BoolVar(&o.push, "push", false, "push the image index to -tag (credentials from the Docker config)")
	flag.BoolVar(&o.verify, "verify", false, "pull the pushed index back and check it")
	flag.BoolVar(&o.loopback, "loopback-registry", false, "push to an in-memory registry on 127.0.0.1 started for this run instead of -tag's registry")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var err error
	if o.binary != "" {
		err = runSingle(o)
	} else {
		err = runIndex(ctx, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kagenti-image:", err)
		os.Exit(1)
	}
}

func labels(version string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.version": version,
		"org.opencontainers.image.title":   "kagenti-router",
		"org.opencontainers.image.source":  "https://github.com/kagenti/terraform-provider-kagenti",
	}
}

func runSingle(o options) error {
	if o.tag == "" || (o.ociDir == "" && o.tarPath == "") {
		return fmt.Errorf("need -binary, -tag and -oci-layout and/or -tar")
	}
	ref, err := name.ParseReference(o.tag)
	if err != nil {
		return err
	}
	img, err := ociimage.Build(ociimage.Spec{Binary: o.binary, OS: "linux", Arch: o.arch, Port: o.port, Labels: labels(o.version)})
	if err != nil {
		return err
	}
	if o.ociDir != "" {
		p, err := layout.Write(o.ociDir, empty.Index)
		if err != nil {
			return err
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref.String()})); err != nil {
			return err
		}
	}
	if o.tarPath != "" {
		if err := tarball.WriteToFile(o.tarPath, ref, img); err != nil {
			return err
		}
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s@%s\n", ref, digest)
	return nil
}

func runIndex(ctx context.Context, o options) error {
	if o.tag == "" {
		return errors.New("need -tag")
	}
	specs, err := platformSpecs(o)
	if err != nil {
		return err
	}
	if len(specs) == 0 {
		return errors.New("need -binary, or -platform os/arch=path or -artifacts for an image index")
	}
	if !o.push && o.ociDir == "" {
		return errors.New("an image index needs -push and/or -oci-layout")
	}
	idx, err := ociimage.BuildIndex(specs)
	if err != nil {
		return err
	}
	tag := o.tag
	if o.loopback {
		if tag, err = startLoopbackRegistry(tag); err != nil {
			return err
		}
	}
	ref, err := name.ParseReference(tag)
	if err != nil {
		return err
	}
	if o.ociDir != "" {
		p, err := layout.Write(o.ociDir, empty.Index)
		if err != nil {
			return err
		}
		if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": o.tag})); err != nil {
			return err
		}
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	if !o.push {
		fmt.Printf("%s@%s (not pushed)\n", o.tag, digest)
		return nil
	}
	start := time.Now()
	if err := ociimage.Push(ctx, ref, idx); err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s (%d platforms, %s)\n", ref, digest, len(specs), time.Since(start).Round(time.Millisecond))
	if !o.verify {
		return nil
	}
	want := ociimage.Want{Entrypoint: []string{"/" + path.Base(specs[0].Binary)}, Labels: map[string]string{"org.opencontainers.image.version": o.version}}
	for _, s := range specs {
		want.Platforms = append(want.Platforms, s.OS+"/"+s.Arch)
	}
	report, err := ociimage.Verify(ctx, ref, want)
	for _, line := range report {
		fmt.Println("pulled", line)
	}
	if err != nil {
		return err
	}
	fmt.Printf("verified %s: platforms %v, nonroot, entrypoint %v, version %s\n", ref, want.Platforms, want.Entrypoint, o.version)
	return nil
}

// platformSpecs collects the index's binaries from -platform flags and GoReleaser's artifacts.
func platformSpecs(o options) ([]ociimage.Spec, error) {
	var specs []ociimage.Spec
	for _, p := range o.platforms {
		plat, bin, ok := strings.Cut(p, "=")
		osName, arch, ok2 := strings.Cut(plat, "/")
		if !ok || !ok2 || bin == "" {
			return nil, fmt.Errorf("-platform %q: want os/arch=path, e.g. linux/amd64=dist/kagenti-router", p)
		}
		specs = append(specs, ociimage.Spec{Binary: bin, OS: osName, Arch: arch, Port: o.port, Labels: labels(o.version)})
	}
	if o.artifacts != "" {
		bins, err := goreleaserBinaries(o.artifacts, o.buildID)
		if err != nil {
			return nil, err
		}
		for _, b := range bins {
			specs = append(specs, ociimage.Spec{Binary: b.Path, OS: b.GOOS, Arch: b.GOARCH, Port: o.port, Labels: labels(o.version)})
		}
	}
	return specs, nil
}

// goreleaserArtifact is the part of an entry of GoReleaser's dist/artifacts.json read here.
type goreleaserArtifact struct {
	Path   string `json:"path"`
	GOOS   string `json:"goos"`
	GOARCH string `json:"goarch"`
	Type   string `json:"type"`
	Extra  struct {
		ID string `json:"ID"`
	} `json:"extra"`
}

func goreleaserBinaries(file, buildID string) ([]goreleaserArtifact, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var all []goreleaserArtifact
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	var bins []goreleaserArtifact
	for _, a := range all {
		if a.Type == "Binary" && a.Extra.ID == buildID && a.GOOS == "linux" {
			bins = append(bins, a)
		}
	}
	if len(bins) == 0 {
		return nil, fmt.Errorf("%s has no linux binaries of build %q: run GoReleaser first", file, buildID)
	}
	return bins, nil
}

// startLoopbackRegistry serves go-containerregistry's in-memory registry on 127.0.0.1 for the
// life of the process and returns tag with its registry replaced by that one.
func startLoopbackRegistry(tag string) (string, error) {
	ref, err := name.ParseReference(tag)
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	repo := ref.Context().RepositoryStr()
	fmt.Printf("loopback registry on %s\n", ln.Addr())
	return ln.Addr().String() + "/" + repo + ":" + ref.Identifier(), nil
}
