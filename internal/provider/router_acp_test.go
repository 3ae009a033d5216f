package provider

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
	"github.com/kagenti/terraform-provider-kagenti/internal/router"
	"github.com/kagenti/terraform-provider-kagenti/internal/testenv"
)

// ACP through the router with the ACP SDK on both ends: an agent built with acp_sdk.server runs
// on loopback and is registered by Terraform (protocol acp, by endpoint); the ACP SDK client
// lists agents, runs synchronously, reads the run back by id and streams a run, all through
// kagenti-router's /acp/{namespace} routes.
func TestAccRouter_ACPWithSDK(t *testing.T) {
	client := testAccKube(t)
	python := venvPython(t, testenv.ACPSDK())
	port := freePort(t)
	server := exec.Command(python, "testdata/acp/server.py", fmt.Sprint(port))
	server.Stdout, server.Stderr = testWriter{t}, testWriter{t}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Process.Kill(); _ = server.Wait() })
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", port))

	for _, cli := range testAccCLIs {
		t.Run(cli.name, func(t *testing.T) {
			t.Setenv("TF_ACC_TERRAFORM_PATH", cli.path)
			ns := testAccNamespace(t, client)
			config := fmt.Sprintf(`
resource "kagenti_agent" "summarizer" {
  name        = "summarizer"
  namespace   = %q
  framework   = "beeai"
  protocol    = "acp"
  endpoint    = "http://127.0.0.1:%d"
  description = "Summarizes what it is told"
}
`, ns, port)
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				CheckDestroy:             checkNoLabelledObjects(client, ns),
				Steps: []resource.TestStep{{
					Config: config,
					Check: func(*terraformState) error {
						ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
						defer cancel()
						registry := router.NewRegistry()
						synced := make(chan struct{})
						disc := &router.Discovery{Client: testAccDynamic(t), Keys: contract.NewKeys(""), Namespaces: []string{ns}, Registry: registry,
							Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
						go func() { _ = disc.Run(ctx, synced) }()
						<-synced
						l, err := net.Listen("tcp", "127.0.0.1:0")
						if err != nil {
							return err
						}
						rt, err := router.New(router.Config{PublicURL: "http://" + l.Addr().String(), Registry: registry})
						if err != nil {
							return err
						}
						go func() { _ = rt.Serve(l) }()
						defer stopRouter(rt)
						out, err := exec.CommandContext(ctx, python, "testdata/acp/client.py",
							"http://"+l.Addr().String()+"/acp/"+ns, "summarizer", "the quarterly report", "").CombinedOutput()
						if err != nil {
							return fmt.Errorf("ACP SDK client through the router: %v\n%s", err, out)
						}
						for _, want := range []string{
							"agents: summarizer",
							"sync: summary of: the quarterly report",
							"status: RunStatus.COMPLETED",
							"stream: run.created,run.in-progress,message.created,message.part,message.completed,run.completed",
						} {
							if !strings.Contains(string(out), want) {
								return fmt.Errorf("ACP SDK client output lacks %q:\n%s", want, out)
							}
						}
						return nil
					},
				}},
			})
		})
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}
