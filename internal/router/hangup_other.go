//go:build !linux

package router

import (
	"net"
	"sync/atomic"
	"time"
)

// hangupWatcher, where there is no epoll, reads each watched connection in a goroutine of its
// own: the request has been read in full and an HTTP/1.1 client sends nothing more until the
// answer, so the read returns only when the client closes (net/http's background read does the
// same). stop ends the read before the server reads the connection again. Should the read
// return bytes — a pipelined request, which no A2A or ACP client sends — they are lost to the
// server, which then answers 400 and closes.
type hangupWatcher struct{}

func newHangupWatcher() (*hangupWatcher, error) { return &hangupWatcher{}, nil }

func (*hangupWatcher) watch(conn net.Conn, gone func()) (stop func()) {
	var stopping atomic.Bool
	done := make(chan struct{})
	// The server's read deadline for the request may still be set: the read must outlast it.
	_ = conn.SetReadDeadline(time.Time{})
	go func() {
		defer close(done)
		var b [1]byte
		if n, err := conn.Read(b[:]); n == 0 && err != nil && !stopping.Load() {
			gone()
		}
	}()
	return func() {
		stopping.Store(true)
		_ = conn.SetReadDeadline(time.Unix(1, 0))
		<-done
		_ = conn.SetReadDeadline(time.Time{})
	}
}

func (*hangupWatcher) close() {}
