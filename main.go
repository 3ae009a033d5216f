package main

import (
	"context"
	"flag"
	"log"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/kagenti/terraform-provider-kagenti/internal/provider"
)

// version is set by goreleaser at release time.
var version = "dev"

// Generate docs with tfplugindocs (see `make docs`).
//go:generate go run github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs generate --provider-name kagenti

func main() {
	var debugMode bool
	flag.BoolVar(&debugMode, "debug", false, "run the provider with support for debuggers like delve")
	flag.Parse()
	if err := serve(debugMode); err != nil {
		log.Fatal(err.Error())
	}
}

func serve(debugMode bool) error {
	if !debugMode { // in debug mode the provider's own stderr is the only log
		quietUnlessAsked()
	}
	tuneGC()
	// KAGENTI_PROVIDER_CPU_PROFILE names a file for a CPU profile of this run (for whoever
	// measures a slow plan; Terraform ends the provider gracefully, which writes it).
	if path := os.Getenv("KAGENTI_PROVIDER_CPU_PROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// KAGENTI_PROVIDER_HEAP_PROFILE names a file for the heap profile of the run's end (what the
	// last collection found live): for whoever measures the provider's memory.
	if path := os.Getenv("KAGENTI_PROVIDER_HEAP_PROFILE"); path != "" {
		defer func() {
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	return providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address:         "registry.terraform.io/kagenti/kagenti",
		Debug:           debugMode,
		ProtocolVersion: 6,
	})
}

// quietUnlessAsked turns the plugin SDK's and the provider's logs off when nobody asked for any
// (TF_LOG, TF_LOG_PROVIDER, TF_LOG_PROVIDER_KAGENTI and TF_LOG_SDK unset). Without a level they
// default to TRACE: every call is formatted as JSON and sent to Terraform, which drops it. That
// was a sixth of the provider's CPU in a no-op plan of 200 agents. Any of those variables set
// keeps the SDK's own behaviour. (terraform-plugin-go names the provider's logger after its
// address: TF_LOG_PROVIDER_KAGENTI sets its level; TF_LOG_SDK covers the SDK's subsystems.)
func quietUnlessAsked() {
	for _, v := range []string{"TF_LOG", "TF_LOG_PROVIDER", "TF_LOG_PROVIDER_KAGENTI", "TF_LOG_SDK"} {
		if os.Getenv(v) != "" {
			return
		}
	}
	_ = os.Setenv("TF_LOG_SDK", "off")
	_ = os.Setenv("TF_LOG_PROVIDER_KAGENTI", "off")
}

// tuneGC trades memory the provider has to spare for CPU it lacks, unless GOGC or GOMEMLIMIT
// says otherwise. A plan's work is many small allocations over a small live heap (the
// framework converts every value and schema path), so at Go's default (GOGC=100) the collector
// ran constantly: a quarter of the provider's CPU in a no-op plan of 200 agents. At 400 it
// runs a quarter as often; the soft limit makes it work harder before the heap passes 192 MiB.
// That work grows faster than the state (a no-op plan of 1,000 agents spends 7 s of CPU
// collecting, 500 agents 1.7 s), so KAGENTI_PROVIDER_MEMORY_LIMIT, read when the provider is
// configured, may lift the limit for the provider alone.
func tuneGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(400)
	debug.SetMemoryLimit(192 << 20)
}
