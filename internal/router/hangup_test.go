//go:build linux

package router

import (
	"net"
	"testing"
	"time"
)

// TestHangupWatcher: a client closing its connection is reported once; a stopped watch reports
// nothing; the watched connection's bytes are left to the server.
func TestHangupWatcher(t *testing.T) {
	w, err := newHangupWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pair := func() (client, server net.Conn) {
		client, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err = l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return client, server
	}

	client, server := pair()
	defer server.Close()
	gone := make(chan struct{}, 2)
	stop := w.watch(server, func() { gone <- struct{}{} })
	if _, err := client.Write([]byte("next request")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gone:
		t.Fatal("bytes from a client that is still there were taken for a hang-up")
	case <-time.After(100 * time.Millisecond):
	}
	client.Close()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the client's close was not reported")
	}
	stop()
	buf := make([]byte, 32)
	if n, _ := server.Read(buf); string(buf[:n]) != "next request" {
		t.Fatalf("the server read %q: the watcher took bytes of the connection", buf[:n])
	}

	client2, server2 := pair()
	defer server2.Close()
	stop2 := w.watch(server2, func() { gone <- struct{}{} })
	stop2()
	client2.Close()
	select {
	case <-gone:
		t.Fatal("a stopped watch reported a hang-up")
	case <-time.After(200 * time.Millisecond):
	}
}
