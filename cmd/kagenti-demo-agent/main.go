// Command kagenti-demo-agent is a tiny A2A agent (built with the A2A Go SDK) for `make demo`:
// it answers every message with a greeting and says which token reached it — the audience it
// was issued for and the workload that called — so the demo shows the router's token exchange.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"iter"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

type greeter struct{ name string }

func (g greeter) Execute(_ context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		text := ""
		for _, p := range ec.Message.Parts {
			text += p.Text()
		}
		token := "none"
		if v, ok := ec.ServiceParams.Get("authorization"); ok && len(v) > 0 {
			token = describe(strings.TrimPrefix(v[0], "Bearer "))
		}
		reply := fmt.Sprintf("Hello from %s! You said %q. The token I received: %s", g.name, text, token)
		yield(a2a.NewMessage(a2a.MessageRoleAgent, a2a.NewTextPart(reply)), nil)
	}
}

func (greeter) Cancel(context.Context, *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(func(a2a.Event, error) bool) {}
}

// describe shows a JWT's aud, azp and sub (the demo only displays them; verifying tokens is the
// router's job in front of it).
func describe(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "not a JWT"
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "unreadable"
	}
	var c map[string]any
	if json.Unmarshal(payload, &c) != nil {
		return "unreadable"
	}
	return fmt.Sprintf("aud=%v azp=%v sub=%v", c["aud"], c["azp"], c["sub"])
}

func main() {
	listen := flag.String("listen", "127.0.0.1:18950", "address to serve on")
	name := flag.String("name", "hello-agent", "agent name")
	flag.Parse()
	srv := &http.Server{Addr: *listen, Handler: a2asrv.NewJSONRPCHandler(a2asrv.NewHandler(greeter{name: *name})), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("%s serving A2A JSON-RPC on http://%s", *name, *listen)
	log.Fatal(srv.ListenAndServe())
}
