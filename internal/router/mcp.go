package router

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kagenti/terraform-provider-kagenti/internal/a2aversion"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// Agents as MCP tools: /mcp/{ns} is a streamable-HTTP MCP server whose tools are the A2A agents
// of the namespace that opted in. tools/call sends an A2A message to the agent through the same
// authn, policy and token-exchange path as /a2a, and returns the agent's answer as the result.

// agentToolInput is a tool's input: the text sent to the agent.
type agentToolInput struct {
	Text string `json:"text" jsonschema:"the message to send to the agent"`
}

type callerKey struct{}

// mcpHandler serves /mcp/{ns}; the MCP server is built per request (stateless mode) from the
// routes of the moment.
func (rt *Router) mcpHandler() http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		return rt.mcpServer(r.Context(), r.PathValue("ns"))
	}, &mcp.StreamableHTTPOptions{Stateless: true})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, err := rt.authenticate(r)
		if err != nil {
			rt.fail(w, r, shapeJSON, nil, err)
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, caller)))
	})
}

func (rt *Router) mcpServer(ctx context.Context, ns string) *mcp.Server {
	caller, _ := ctx.Value(callerKey{}).(*Caller)
	server := mcp.NewServer(&mcp.Implementation{Name: "kagenti-router", Version: "1.0.0"}, nil)
	for _, route := range rt.cfg.Registry.List() {
		if route.Namespace != ns || route.Type != contract.TypeAgent || route.Protocol != "a2a" || !route.ExposeAsTool {
			continue
		}
		// A caller is shown only the agents it may call: the policy check the call makes
		// (authorize), not a second rule that could drift from it.
		if rt.authorize(caller, route) != nil {
			continue
		}
		mcp.AddTool(server, &mcp.Tool{Name: route.Name, Description: toolDescription(route)},
			func(ctx context.Context, req *mcp.CallToolRequest, in agentToolInput) (*mcp.CallToolResult, any, error) {
				var answer string
				var err error
				if token := req.Params.GetProgressToken(); token != nil {
					// The client asked for progress: stream from the agent, one notification per event.
					answer, err = rt.streamAgent(ctx, caller, route, in.Text, func(n int, text string) {
						_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: float64(n), Message: text})
					})
				} else {
					answer, err = rt.callAgent(ctx, caller, route, in.Text)
				}
				if err != nil {
					// A refused or failed call is a tool error the model can read, not a protocol error.
					return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}, nil, nil
				}
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: answer}}}, nil, nil
			})
	}
	return server
}

// toolDescription is the card's description and skills.
func toolDescription(route *Route) string {
	var c struct {
		Description string `json:"description"`
		Skills      []struct {
			Name        string `json:"name"`
			Description string `json:"description"`
		} `json:"skills"`
	}
	_ = json.Unmarshal(route.Card, &c)
	desc := c.Description
	if desc == "" {
		desc = "A2A agent " + route.Key()
	}
	var skills []string
	for _, s := range c.Skills {
		if s.Description != "" {
			skills = append(skills, s.Name+" ("+s.Description+")")
		} else {
			skills = append(skills, s.Name)
		}
	}
	if len(skills) > 0 {
		desc += ". Skills: " + strings.Join(skills, ", ")
	}
	return desc
}

// streamAgent is callAgent over A2A streaming (SendStreamingMessage or message/stream):
// progress gets the agent's text of every event, and the answer is all of it.
func (rt *Router) streamAgent(ctx context.Context, caller *Caller, route *Route, text string, progress func(n int, text string)) (string, error) {
	if err := rt.authorize(caller, route); err != nil {
		return "", err
	}
	token, err := rt.exchange(ctx, caller, route)
	if err != nil {
		return "", err
	}
	for _, v := range route.A2A.versionsToTry() {
		body, err := a2aTextCall(a2aversion.Stream, v, text)
		if err != nil {
			return "", err
		}
		answer, notFound, err := rt.stream(ctx, route, token, body, v, progress)
		if notFound {
			continue
		}
		return answer, err
	}
	return "", fmt.Errorf("agent %s does not stream A2A", route.Key())
}

// a2aTextCall is a JSON-RPC request of op (a send or a stream) in version v carrying one user
// message of text: written in 0.3's shape and converted, as every translated call is.
func a2aTextCall(op a2aversion.Op, v a2aversion.Version, text string) (json.RawMessage, error) {
	var params json.RawMessage
	params, err := json.Marshal(map[string]any{"message": map[string]any{
		"kind": "message", "messageId": fmt.Sprintf("mcp-%d", time.Now().UnixNano()), "role": "user",
		"parts": []any{map[string]any{"kind": "text", "text": text}}}})
	if err != nil {
		return nil, err
	}
	if params, err = a2aversion.Params(op, a2aversion.V03, v, params); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": op.Method(v), "params": params})
}

// stream posts one streaming request and relays its events. notFound reports a method the agent
// does not know (so the caller tries the other protocol version).
func (rt *Router) stream(ctx context.Context, route *Route, token string, body json.RawMessage, v a2aversion.Version, progress func(int, string)) (string, bool, error) {
	resp, err := rt.postUpstream(ctx, route, token, body, v, "text/event-stream")
	if err != nil {
		rt.metrics.upstreamErrors.WithLabelValues(route.Key()).Inc()
		return "", false, fmt.Errorf("agent %s is unavailable", route.Key())
	}
	defer resp.Body.Close()
	var all []string
	n := 0
	handle := func(payload []byte) (bool, error) {
		var ev struct {
			Result any       `json:"result"`
			Error  *rpcError `json:"error"`
		}
		if json.Unmarshal(payload, &ev) != nil {
			return false, nil
		}
		if ev.Error != nil {
			if ev.Error.Code == codeMethodNotFound && n == 0 {
				return true, nil
			}
			return false, fmt.Errorf("agent %s answered with an error: %s", route.Key(), ev.Error.Message)
		}
		if texts := agentTexts(ev.Result); len(texts) > 0 {
			n++
			progress(n, strings.Join(texts, "\n"))
			all = append(all, texts...)
		}
		return false, nil
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// A plain JSON-RPC answer (an error, or an agent that does not stream).
		payload, _ := io.ReadAll(io.LimitReader(resp.Body, rt.cfg.MaxBodyBytes))
		notFound, err := handle(payload)
		return strings.Join(all, "\n"), notFound, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), int(rt.cfg.MaxBodyBytes))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		notFound, err := handle([]byte(strings.TrimSpace(line)))
		if notFound || err != nil {
			return "", notFound, err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return "", false, fmt.Errorf("agent %s stream broke: %w", route.Key(), err)
	}
	return strings.Join(all, "\n"), false, nil
}

// agentTexts collects the text parts an agent produced in an A2A event of either version:
// messages, status messages and artifacts, but not the task's history nor the user's messages.
func agentTexts(v any) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if role, _ := x["role"].(string); role == "user" || role == "ROLE_USER" {
				return
			}
			if parts, ok := x["parts"].([]any); ok {
				for _, p := range parts {
					if m, ok := p.(map[string]any); ok {
						if t, ok := m["text"].(string); ok && t != "" {
							out = append(out, t)
						}
					}
				}
			}
			for k, child := range x {
				if k != "history" && k != "parts" {
					walk(child)
				}
			}
		case []any:
			for _, child := range x {
				walk(child)
			}
		}
	}
	walk(v)
	return out
}

// callAgent sends one A2A message to an agent (SendMessage or message/send, in the version its
// card names) with a token exchanged for it, and returns the text of its answer.
func (rt *Router) callAgent(ctx context.Context, caller *Caller, route *Route, text string) (string, error) {
	if err := rt.authorize(caller, route); err != nil {
		return "", err
	}
	token, err := rt.exchange(ctx, caller, route)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, rt.cfg.Timeout)
	defer cancel()
	var (
		res    json.RawMessage
		rpcErr *rpcError
	)
	for _, v := range route.A2A.versionsToTry() {
		body, err := a2aTextCall(a2aversion.Send, v, text)
		if err != nil {
			return "", err
		}
		res, rpcErr, err = rt.rpc(ctx, route, token, body, v)
		if err != nil {
			rt.metrics.upstreamErrors.WithLabelValues(route.Key()).Inc()
			return "", fmt.Errorf("agent %s is unavailable", route.Key())
		}
		if rpcErr == nil || rpcErr.Code != codeMethodNotFound {
			break
		}
	}
	if rpcErr != nil {
		return "", fmt.Errorf("agent %s answered with an error: %s", route.Key(), rpcErr.Message)
	}
	return answerText(res), nil
}

// postUpstream posts a JSON-RPC body of version v to the route (through the balancer, with the
// exchanged token, the version's header and the trace context).
func (rt *Router) postUpstream(ctx context.Context, route *Route, token string, body json.RawMessage, v a2aversion.Version, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rt.balancer.pick(route, "").String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if v == a2aversion.V10 {
		req.Header.Set(a2aversion.Header, string(v))
	}
	injectTrace(req)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return rt.agentTransport(route, nil, false, true).RoundTrip(req)
}

func (rt *Router) rpc(ctx context.Context, route *Route, token string, body json.RawMessage, v a2aversion.Version) (json.RawMessage, *rpcError, error) {
	resp, err := rt.postUpstream(ctx, route, token, body, v, "")
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *rpcError       `json:"error"`
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, rt.cfg.MaxBodyBytes))
	if err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, nil, fmt.Errorf("answer is not JSON-RPC: %w", err)
	}
	if out.Error == nil && out.Result == nil {
		return nil, nil, errors.New("answer has neither result nor error")
	}
	return out.Result, out.Error, nil
}

// answerText collects the text parts of an A2A answer: a message, or a task's status message and
// artifacts, in the 1.0 ({"message": ...}/{"task": ...}) or 0.3 (kind-tagged) shape.
func answerText(result json.RawMessage) string {
	type part struct {
		Text string `json:"text"`
	}
	type message struct {
		Parts []part `json:"parts"`
	}
	type task struct {
		Status struct {
			Message *message `json:"message"`
		} `json:"status"`
		Artifacts []message `json:"artifacts"`
	}
	var r struct {
		Message *message `json:"message"`
		Task    *task    `json:"task"`
		Kind    string   `json:"kind"`
		message
		task
	}
	_ = json.Unmarshal(result, &r)
	var msgs []message
	switch {
	case r.Message != nil:
		msgs = append(msgs, *r.Message)
	case r.Task != nil:
		msgs = append(msgs, r.Task.Artifacts...)
		if r.Task.Status.Message != nil {
			msgs = append(msgs, *r.Task.Status.Message)
		}
	case r.Kind == "task":
		msgs = append(msgs, r.task.Artifacts...)
		if r.task.Status.Message != nil {
			msgs = append(msgs, *r.task.Status.Message)
		}
	default:
		msgs = append(msgs, r.message)
	}
	var texts []string
	for _, m := range msgs {
		for _, p := range m.Parts {
			if p.Text != "" {
				texts = append(texts, p.Text)
			}
		}
	}
	return strings.Join(texts, "\n")
}
