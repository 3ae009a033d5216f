package router

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"
	"github.com/a2aproject/a2a-go/v2/a2asrv"

	"github.com/kagenti/terraform-provider-kagenti/internal/a2aversion"
)

// echoExecutor is an agent built with the A2A SDK: "stream:N" answers with a task that streams N
// artifact events; "wait" blocks until cancelled; anything else gets an echo message. It records
// the Authorization header of every call, so tests can check what the router forwarded.
type echoExecutor struct {
	mu    sync.Mutex
	auths []string
	// versions are the A2A-Version headers of the calls ("" when absent).
	versions []string
	// release unblocks "wait" tasks
	release chan struct{}
}

func (e *echoExecutor) recordVersion(v string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.versions = append(e.versions, v)
}

func (e *echoExecutor) recordAuth(v string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.auths = append(e.auths, v)
}

func (e *echoExecutor) seenVersions() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.versions...)
}

func (e *echoExecutor) seenAuth() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.auths...)
}

func (e *echoExecutor) Execute(ctx context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		auth := ""
		if ec.ServiceParams != nil {
			if v, ok := ec.ServiceParams.Get("authorization"); ok && len(v) > 0 {
				auth = v[0]
			}
		}
		e.mu.Lock()
		e.auths = append(e.auths, auth)
		e.mu.Unlock()
		text := ""
		for _, p := range ec.Message.Parts {
			text += p.Text()
		}
		switch {
		case strings.HasPrefix(text, "stream:"):
			if !yield(a2a.NewSubmittedTask(ec, ec.Message), nil) {
				return
			}
			n := 0
			for _, c := range strings.TrimPrefix(text, "stream:") {
				n = n*10 + int(c-'0')
			}
			for i := range n {
				if !yield(a2a.NewArtifactEvent(ec, a2a.NewTextPart("chunk-"+string(rune('0'+i)))), nil) {
					return
				}
			}
			yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateCompleted, a2a.NewMessageForTask(a2a.MessageRoleAgent, ec, a2a.NewTextPart("done"))), nil)
		case text == "wait":
			if !yield(a2a.NewSubmittedTask(ec, ec.Message), nil) {
				return
			}
			if !yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateWorking, nil), nil) {
				return
			}
			select {
			case <-ctx.Done():
			case <-e.release:
			}
		default:
			yield(a2a.NewMessage(a2a.MessageRoleAgent, a2a.NewTextPart("echo: "+text)), nil)
		}
	}
}

func (e *echoExecutor) Cancel(ctx context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateCanceled, nil), nil)
	}
}

// newA2APeer serves the executor over JSON-RPC in the protocol versions given, on one path, as
// the SDK's own handlers answer them: the SDK has one handler per version, so a peer of both
// dispatches on the method name, and a peer of one version answers the other's methods as its
// handler does (method not found).
func newA2APeer(t *testing.T, versions ...a2aversion.Version) (*httptest.Server, *echoExecutor) {
	t.Helper()
	exec := &echoExecutor{release: make(chan struct{})}
	handler := a2asrv.NewHandler(exec)
	v10 := a2asrv.NewJSONRPCHandler(handler)
	v03 := a2av0.NewJSONRPCHandler(handler)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		exec.recordVersion(r.Header.Get(a2aversion.Header))
		switch {
		case len(versions) == 1 && versions[0] == a2aversion.V03:
			v03.ServeHTTP(w, r)
			return
		case len(versions) == 1 && versions[0] == a2aversion.V10:
			v10.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var env struct {
			Method string `json:"method"`
		}
		_ = json.Unmarshal(body, &env)
		if _, v, _ := a2aversion.ParseMethod(env.Method); v == a2aversion.V03 {
			v03.ServeHTTP(w, r)
			return
		}
		v10.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		close(exec.release)
		srv.Close()
	})
	return srv, exec
}
