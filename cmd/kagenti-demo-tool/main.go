// Command kagenti-demo-tool is a small MCP tool server (the official MCP Go SDK, streamable HTTP
// at /mcp) for `make demo` and the real-node tests. Its one tool, forecast, answers with the
// weather of a city and says which token reached the server — its audience, the party that
// exchanged it and the user — so a caller sees each hop's token exchange.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kagenti/terraform-provider-kagenti/internal/demo"
)

type tokenKey struct{}

type forecastInput struct {
	City string `json:"city" jsonschema:"the city to forecast"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:18960", "address to serve on")
	name := flag.String("name", "weather-tool", "server name")
	flag.Parse()
	server := mcp.NewServer(&mcp.Implementation{Name: *name, Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "forecast", Description: "The weather forecast for a city"},
		func(ctx context.Context, _ *mcp.CallToolRequest, in forecastInput) (*mcp.CallToolResult, any, error) {
			token, _ := ctx.Value(tokenKey{}).(string)
			text := fmt.Sprintf("%s: sunny in %s. The token I received: %s", *name, in.City, demo.DescribeToken(token))
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
		})
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	mux := http.NewServeMux()
	mux.Handle("/mcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		mcpHandler.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, token)))
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("%s serving MCP on http://%s/mcp", *name, *listen)
	log.Fatal(srv.ListenAndServe())
}
