// Command kagenti-sandbox builds, starts and stops the local sandbox of real systems (Kubernetes,
// SPIRE, Keycloak) that the acceptance tests and `make demo` run against.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kagenti/terraform-provider-kagenti/internal/testenv"
)

const usage = `usage: kagenti-sandbox [flags] <command>

commands:
  build [tool...]   build missing tools into the cache (default: all)
  up                start the sandbox (builds what is missing first) and print what runs
  down              stop the sandbox started by up, each process by its PID
  status            print what runs
flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kagenti-sandbox:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kagenti-sandbox", flag.ContinueOnError)
	cacheDir := fs.String("cache-dir", testenv.DefaultCacheDir(), "where built tools are cached ($KAGENTI_CACHE_DIR)")
	dir := fs.String("dir", defaultDir(), "sandbox state dir ($KAGENTI_SANDBOX_DIR)")
	components := fs.String("components", "", "comma-separated components to start (default: kubernetes,spire,keycloak)")
	nodes := fs.Int("nodes", 2, "simulated (kwok) nodes")
	podsPerNode := fs.Int("pods-per-node", 110, "pods each simulated node holds")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch fs.Arg(0) {
	case "build":
		builder := &testenv.Builder{CacheDir: *cacheDir, Log: os.Stderr}
		tools := testenv.Tools()
		if fs.NArg() > 1 {
			tools = nil
			for _, name := range fs.Args()[1:] {
				t, err := testenv.ToolByName(name)
				if err != nil {
					return err
				}
				tools = append(tools, t)
			}
		}
		for _, t := range tools {
			if err := builder.Ensure(ctx, t); err != nil {
				return err
			}
			fmt.Printf("%s %s: %s\n", t.Name, t.Version, builder.Dir(t))
		}
		return nil
	case "up":
		if sb, err := testenv.Load(*dir); err == nil {
			gone := sb.Stale()
			if len(gone) == 0 {
				return fmt.Errorf("a sandbox is already running in %s; run `make sandbox-down` first", *dir)
			}
			// Its processes are gone (a reboot, a crash): stop what is left and start afresh.
			fmt.Fprintf(os.Stderr, "the sandbox recorded in %s is not running (%s gone); replacing it\n", *dir, strings.Join(gone, ", "))
			if err := sb.Stop(); err != nil {
				return err
			}
		}
		if err := os.RemoveAll(*dir); err != nil {
			return err
		}
		opts := testenv.Options{Dir: *dir, CacheDir: *cacheDir, Log: os.Stderr, Nodes: *nodes, PodsPerNode: *podsPerNode}
		if *components != "" {
			opts.Components = strings.Split(*components, ",")
		}
		sb, err := testenv.Start(ctx, opts)
		if err != nil {
			return err
		}
		envFile := filepath.Join(sb.Dir, "env")
		if err := sb.WriteEnvFile(envFile); err != nil {
			return err
		}
		fmt.Print(sb.Summary())
		fmt.Printf("env: source %s\n", envFile)
		return nil
	case "down":
		sb, err := testenv.Load(*dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "nothing to stop: %v\n", err)
			return nil
		}
		if err := sb.Stop(); err != nil {
			return err
		}
		fmt.Printf("stopped the sandbox in %s\n", *dir)
		return nil
	case "status":
		sb, err := testenv.Load(*dir)
		if err != nil {
			return err
		}
		if gone := sb.Stale(); len(gone) > 0 {
			return fmt.Errorf("the sandbox recorded in %s is not running (%s gone); `make sandbox-up` replaces it", *dir, strings.Join(gone, ", "))
		}
		fmt.Print(sb.Summary())
		return nil
	default:
		fs.Usage()
		return fmt.Errorf("unknown command %q", fs.Arg(0))
	}
}

func defaultDir() string {
	if d := os.Getenv("KAGENTI_SANDBOX_DIR"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "kagenti-sandbox")
}
