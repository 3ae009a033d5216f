// Command kagenti-demo-agent is a tiny A2A agent (built with the A2A Go SDK) for `make demo` and
// the real-node tests: it answers every message with a greeting and says which token reached it
// — the audience it was issued for, the party that exchanged it and the user — so a caller sees
// the router's token exchange.
//
// With -next (an agent's router URL) or -tool (an MCP tool's router URL) it also calls onward, as
// an agent on Kagenti does: it exchanges the token it received for one addressed to the router
// (RFC 8693 at Keycloak), authenticating with its own JWT-SVID from the SPIFFE Workload API, and
// appends the answer to its own. It holds no secret.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"iter"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/kagenti/terraform-provider-kagenti/internal/cardsig"
	"github.com/kagenti/terraform-provider-kagenti/internal/demo"
	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
	"github.com/kagenti/terraform-provider-kagenti/internal/router"
)

type greeter struct {
	name string
	// onward calls further agents and tools; nil when the agent only answers.
	onward *onward
}

// onward is how the agent calls through the router: with a token exchanged for the router's
// audience.
type onward struct {
	next, tool string
	audience   string
	exchanger  *router.Exchanger
}

func (g greeter) Execute(ctx context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		text := ""
		for _, p := range ec.Message.Parts {
			text += p.Text()
		}
		token := ""
		if v, ok := ec.ServiceParams.Get("authorization"); ok && len(v) > 0 {
			token = strings.TrimPrefix(v[0], "Bearer ")
		}
		reply := fmt.Sprintf("Hello from %s! You said %q. The token I received: %s", g.name, text, demo.DescribeToken(token))
		if g.onward != nil {
			more, err := g.onward.call(ctx, token, text)
			if err != nil {
				yield(nil, fmt.Errorf("%s calling onward: %w", g.name, err))
				return
			}
			reply += more
		}
		yield(a2a.NewMessage(a2a.MessageRoleAgent, a2a.NewTextPart(reply)), nil)
	}
}

func (greeter) Cancel(context.Context, *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(func(a2a.Event, error) bool) {}
}

// call exchanges the incoming token for the router and calls the tool, then the next agent,
// each answer appended after " | ".
func (o *onward) call(ctx context.Context, incoming, text string) (string, error) {
	if incoming == "" {
		return "", errors.New("no token to exchange: the call reached the agent without one")
	}
	token, _, err := o.exchanger.Exchange(ctx, incoming, o.audience, keycloak.AudienceScopeName(o.audience))
	if err != nil {
		return "", fmt.Errorf("exchange for the router (%s): %w", o.audience, err)
	}
	var out string
	if o.tool != "" {
		answer, err := demo.Forecast(ctx, o.tool, token, text)
		if err != nil {
			return "", fmt.Errorf("tool %s: %w", o.tool, err)
		}
		out += " | " + answer
	}
	if o.next != "" {
		answer, err := demo.SendText(ctx, nil, o.next, token, text)
		if err != nil {
			return "", fmt.Errorf("agent %s: %w", o.next, err)
		}
		out += " | " + answer
	}
	return out, nil
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func main() {
	listen := flag.String("listen", "127.0.0.1:18950", "address to serve on")
	name := flag.String("name", "hello-agent", "agent name")
	next := flag.String("next", "", "router URL of an agent to call onward (its card URL)")
	tool := flag.String("tool", "", "router URL of an MCP tool to call onward (its forecast tool)")
	issuer := flag.String("issuer", "", "Keycloak realm URL (issuer) to exchange tokens at; needed with -next or -tool")
	issuerCA := flag.String("issuer-ca-file", "", "PEM file of the CA of the issuer, besides the system's")
	issuerCAPEM := flag.String("issuer-ca", env("KAGENTI_ISSUER_CA_PEM", ""), "PEM of the CA of the issuer (instead of -issuer-ca-file)")
	audience := flag.String("router-audience", "", "the router's client id: onward calls carry a token for it")
	socket := flag.String("spiffe-socket", env("SPIFFE_ENDPOINT_SOCKET", ""), "SPIFFE Workload API socket the agent's JWT-SVID comes from")
	cardFile := flag.String("card-file", env("KAGENTI_AGENT_CARD_FILE", ""), "the agent's card (the composition mounts it) to serve at /.well-known/agent-card.json")
	sign := flag.Bool("sign", true, "sign the card served with the agent's X509-SVID (with -spiffe-socket)")
	send := flag.String("send", "", "instead of serving: send one message to the agent at this URL (its card's base URL), with "+
		"the TOKEN environment variable as bearer token, print the answer and exit (1 on failure); a client for tests from inside the cluster")
	sendFor := flag.Duration("send-for", 0, "with -send: try again for this long while the agent cannot be reached (a network policy enforcer may "+
		"admit a new pod a moment after it starts)")
	flag.Parse()
	if *send != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second+*sendFor)
		defer cancel()
		deadline := time.Now().Add(*sendFor)
		var answer string
		var err error
		for {
			answer, err = demo.SendText(ctx, &http.Client{Timeout: 10 * time.Second}, *send, os.Getenv("TOKEN"), "hello from inside the cluster")
			if err == nil || !unreachable(err) || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil {
			log.Fatalf("send to %s: %v", *send, err)
		}
		fmt.Println(answer)
		return
	}
	g := greeter{name: *name}
	if *next != "" || *tool != "" {
		if *issuer == "" || *audience == "" || *socket == "" {
			log.Fatal("-next and -tool need -issuer, -router-audience and -spiffe-socket (or SPIFFE_ENDPOINT_SOCKET)")
		}
		client, err := keycloak.HTTPClientTrustingCAFile(*issuerCA)
		if err == nil && client == nil {
			client, err = keycloak.HTTPClientTrustingCA(*issuerCAPEM)
		}
		if err != nil {
			log.Fatalf("the issuer's CA: %v", err)
		}
		issuerURL := strings.TrimRight(*issuer, "/")
		g.onward = &onward{next: *next, tool: *tool, audience: *audience, exchanger: &router.Exchanger{
			HTTP: client, TokenURL: issuerURL + "/protocol/openid-connect/token",
			Assertion: router.SPIFFEAssertion(*socket, issuerURL, ""),
		}}
	}
	mux := http.NewServeMux()
	mux.Handle("/", a2asrv.NewJSONRPCHandler(a2asrv.NewHandler(g)))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	if *cardFile != "" {
		cards := cardsig.NewServer(*cardFile, false)
		if *sign && *socket != "" {
			go watchSVIDs(context.Background(), cards, *socket)
		}
		mux.Handle("GET /.well-known/agent-card.json", cards)
	}
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("%s serving A2A JSON-RPC on http://%s", *name, *listen)
	log.Fatal(srv.ListenAndServe())
}

// watchSVIDs has cards sign with the agent's X509-SVID once the Workload API has issued one
// (until then, or without -sign, the card is served unsigned).
func watchSVIDs(ctx context.Context, cards *cardsig.Server, socket string) {
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr("unix://"+strings.TrimPrefix(socket, "unix://"))))
	if err != nil {
		log.Printf("no X509-SVID to sign the card with: %v", err)
		return
	}
	cards.SetSource(src)
}

// unreachable reports whether a call failed for want of a connection: refused, or timed out.
func unreachable(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &ne) && ne.Timeout())
}
