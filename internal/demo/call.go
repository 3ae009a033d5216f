package demo

import (
	"context"
	"fmt"
	"net/http"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// SendText resolves the agent card at cardURL and sends the agent one text message with token
// (as a bearer token), over the card's interface, returning the text of the answer. hc carries
// the card request and the call (http.DefaultClient when nil).
func SendText(ctx context.Context, hc *http.Client, cardURL, token, text string) (string, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	card, err := agentcard.NewResolver(hc).Resolve(ctx, cardURL)
	if err != nil {
		return "", fmt.Errorf("card: %w", err)
	}
	client, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithJSONRPCTransport(hc))
	if err != nil {
		return "", err
	}
	if token != "" {
		ctx = a2aclient.AttachServiceParams(ctx, a2aclient.ServiceParams{"Authorization": {"Bearer " + token}})
	}
	res, err := client.SendMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart(text))})
	if err != nil {
		return "", err
	}
	m, ok := res.(*a2a.Message)
	if !ok || len(m.Parts) == 0 {
		return "", fmt.Errorf("the agent answered a %T", res)
	}
	return m.Parts[0].Text(), nil
}

// Forecast calls the forecast tool (the demo tool's) of the MCP server at endpoint (streamable
// HTTP) with token, returning the text of the result.
func Forecast(ctx context.Context, endpoint, token, city string) (string, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "kagenti-demo", Version: "1.0.0"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint,
		HTTPClient: &http.Client{Transport: Bearer{Token: token}}}, nil)
	if err != nil {
		return "", err
	}
	defer session.Close()
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "forecast", Arguments: map[string]any{"city": city}})
	if err != nil {
		return "", err
	}
	if res.IsError || len(res.Content) == 0 {
		return "", fmt.Errorf("tool error: %v", res.Content)
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		return "", fmt.Errorf("the tool answered %T", res.Content[0])
	}
	return tc.Text, nil
}

// Bearer is a RoundTripper that sends Token as the bearer token of every request (through Next,
// http.DefaultTransport when nil).
type Bearer struct {
	Token string
	Next  http.RoundTripper
}

func (b Bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	next := b.Next
	if next == nil {
		next = http.DefaultTransport
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.Token)
	return next.RoundTrip(r)
}
