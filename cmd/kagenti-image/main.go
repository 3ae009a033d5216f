// Command kagenti-image packs a static binary into an OCI image (empty base, nonroot) with no
// container daemon, and writes it as an OCI layout directory and/or a tarball that
// `docker load` / `podman load` accept. `make router-image` uses it for kagenti-router.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kagenti/terraform-provider-kagenti/internal/ociimage"
)

func main() {
	bin := flag.String("binary", "", "static binary to pack")
	tag := flag.String("tag", "", "image reference, e.g. ghcr.io/kagenti/kagenti-router:0.1.0")
	arch := flag.String("arch", runtime.GOARCH, "architecture of the binary")
	version := flag.String("version", "dev", "version label")
	ociDir := flag.String("oci-layout", "", "write an OCI image layout here")
	tarPath := flag.String("tar", "", "write a loadable tarball here")
	port := flag.Int("port", 8080, "port the binary serves")
	flag.Parse()
	if err := run(*bin, *tag, *arch, *version, *ociDir, *tarPath, *port); err != nil {
		fmt.Fprintln(os.Stderr, "kagenti-image:", err)
		os.Exit(1)
	}
}

func run(bin, tag, arch, version, ociDir, tarPath string, port int) error {
	if bin == "" || tag == "" || (ociDir == "" && tarPath == "") {
		return fmt.Errorf("need -binary, -tag and -oci-layout and/or -tar")
	}
	ref, err := name.ParseReference(tag)
	if err != nil {
		return err
	}
	img, err := ociimage.Build(ociimage.Spec{Binary: bin, OS: "linux", Arch: arch, Port: port, Labels: map[string]string{
		"org.opencontainers.image.version": version, "org.opencontainers.image.title": "kagenti-router",
	}})
	if err != nil {
		return err
	}
	if ociDir != "" {
		p, err := layout.Write(ociDir, empty.Index)
		if err != nil {
			return err
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref.String()})); err != nil {
			return err
		}
	}
	if tarPath != "" {
		if err := tarball.WriteToFile(tarPath, ref, img); err != nil {
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
