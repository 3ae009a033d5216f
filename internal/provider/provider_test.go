package provider

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/kagenti/terraform-provider-kagenti/internal/testenv"
)

// testAccProtoV6ProviderFactories runs the provider in-process for acceptance tests.
var testAccProtoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"kagenti": providerserver.NewProtocol6WithError(New("test")()),
}

// testAccSandbox is the sandbox TestMain started (or found) for this package's acceptance tests;
// nil without TF_ACC.
var testAccSandbox *testenv.Sandbox

// testCLI is one Terraform-compatible CLI every acceptance test runs under.
type testCLI struct{ name, path string }

var testAccCLIs []testCLI

// TestMain starts one sandbox for the package when TF_ACC is set (or uses the one in
// KAGENTI_SANDBOX_DIR from `make sandbox-up`), builds the CLIs if they are not cached, and points
// the provider at the sandbox through its documented environment variables.
func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Getenv("TF_ACC") == "" {
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	builder := &testenv.Builder{CacheDir: testenv.DefaultCacheDir(), Log: os.Stderr}
	names := strings.Split(envOr("KAGENTI_TEST_CLIS", "tofu,terraform"), ",")
	for _, name := range names {
		tool, err := testenv.ToolByName(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "KAGENTI_TEST_CLIS:", err)
			return 1
		}
		if err := builder.Ensure(ctx, tool); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		testAccCLIs = append(testAccCLIs, testCLI{name: name, path: builder.Path(tool, name)})
	}
	// plugin-testing would otherwise try to download a CLI (or take one from PATH), and tofu
	// refuses the legacy "-" provider namespace. Tests set the path per CLI; this default keeps a
	// test that forgets to on a cached CLI.
	os.Setenv("TF_ACC_TERRAFORM_PATH", testAccCLIs[0].path)
	os.Setenv("TF_ACC_PROVIDER_NAMESPACE", "kagenti")
	os.Setenv("TF_CLI_CONFIG_FILE", os.DevNull)

	if dir := os.Getenv("KAGENTI_SANDBOX_DIR"); dir != "" {
		sb, err := testenv.Load(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if gone := sb.Stale(); len(gone) > 0 {
			fmt.Fprintf(os.Stderr, "KAGENTI_SANDBOX_DIR=%s: the sandbox is not running (%s gone); run `make sandbox-up`\n", dir, strings.Join(gone, ", "))
			return 1
		}
		testAccSandbox = sb
	} else {
		started := time.Now()
		sb, err := testenv.Start(ctx, testenv.Options{Log: os.Stderr, Ephemeral: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, "start sandbox:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "sandbox started in %s\n", time.Since(started).Round(time.Millisecond))
		testAccSandbox = sb
		defer func() {
			if err := sb.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "stop sandbox:", err)
			}
		}()
	}
	for k, v := range testAccSandbox.Env() {
		os.Setenv(k, v)
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "acceptance tests failed; sandbox logs:\n%s", testAccSandbox.Logs(40))
	}
	return code
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// testAccRun runs a test case once under each CLI (OpenTofu and Terraform), as subtests.
// Subtests set TF_ACC_TERRAFORM_PATH, so they run one after another.
func testAccRun(t *testing.T, tc resource.TestCase) {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1 (make testacc)")
	}
	if tc.ProtoV6ProviderFactories == nil {
		tc.ProtoV6ProviderFactories = testAccProtoV6ProviderFactories
	}
	for _, cli := range testAccCLIs {
		t.Run(cli.name, func(t *testing.T) {
			t.Setenv("TF_ACC_TERRAFORM_PATH", cli.path)
			resource.Test(t, tc)
		})
	}
}

// testAccPreCheck skips an acceptance test unless TF_ACC started (or found) a sandbox.
func testAccPreCheck(t *testing.T) {
	t.Helper()
	if testAccSandbox == nil {
		t.Skip("acceptance test: set TF_ACC=1 (make testacc)")
	}
}

// hclPath quotes a file path for HCL.
func hclPath(p string) string { return fmt.Sprintf("%q", filepath.ToSlash(p)) }

// unitTest runs plan-time cases that need no backend (no sandbox, no TF_ACC) under the Terraform
// CLI: the one in TF_ACC_TERRAFORM_PATH, else terraform on PATH. Without either it skips rather
// than let plugin-testing download one.
func unitTest(t *testing.T, tc resource.TestCase) {
	t.Helper()
	if os.Getenv("TF_ACC_TERRAFORM_PATH") == "" {
		// The CLI `make tools` cached (make test builds it before the unit tests), else one on
		// PATH.
		b := &testenv.Builder{CacheDir: testenv.DefaultCacheDir()}
		if tf := testenv.Terraform(); b.Cached(tf) {
			t.Setenv("TF_ACC_TERRAFORM_PATH", b.Path(tf, "terraform"))
		} else if _, err := exec.LookPath("terraform"); err != nil {
			t.Skip("plan-time unit test: needs the Terraform CLI (make tools), on PATH or in TF_ACC_TERRAFORM_PATH")
		}
	}
	if tc.ProtoV6ProviderFactories == nil {
		tc.ProtoV6ProviderFactories = testAccProtoV6ProviderFactories
	}
	resource.UnitTest(t, tc)
}

// validateConfig calls the provider's ValidateResourceConfig (or ValidateDataResourceConfig with
// data) on a configuration of typeName whose attributes are null except those set returns, and
// gives back the diagnostics with their attribute paths, which the CLI does not show for nested
// attributes.
func validateConfig(t *testing.T, typeName string, data bool, set func(tftypes.Object) map[string]tftypes.Value) []*tfprotov6.Diagnostic {
	t.Helper()
	ctx := context.Background()
	server, err := testAccProtoV6ProviderFactories["kagenti"]()
	if err != nil {
		t.Fatal(err)
	}
	schemas, err := server.GetProviderSchema(ctx, &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	schema := schemas.ResourceSchemas[typeName]
	if data {
		schema = schemas.DataSourceSchemas[typeName]
	}
	if schema == nil {
		t.Fatalf("no schema for %s", typeName)
	}
	typ := schema.ValueType().(tftypes.Object)
	config, err := tfprotov6.NewDynamicValue(typ, nullObject(typ, set(typ)))
	if err != nil {
		t.Fatal(err)
	}
	if data {
		resp, err := server.ValidateDataResourceConfig(ctx, &tfprotov6.ValidateDataResourceConfigRequest{TypeName: typeName, Config: &config})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Diagnostics
	}
	resp, err := server.ValidateResourceConfig(ctx, &tfprotov6.ValidateResourceConfigRequest{TypeName: typeName, Config: &config})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Diagnostics
}

// nullObject is an object of typ with the values in set and null everywhere else.
func nullObject(typ tftypes.Object, set map[string]tftypes.Value) tftypes.Value {
	vals := map[string]tftypes.Value{}
	for name, at := range typ.AttributeTypes {
		vals[name] = tftypes.NewValue(at, nil)
		if v, ok := set[name]; ok {
			vals[name] = v
		}
	}
	return tftypes.NewValue(typ, vals)
}
