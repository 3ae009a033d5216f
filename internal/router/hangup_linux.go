//go:build linux

package router

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// hangupWatcher learns that clients closed their connections from an epoll instance of its own,
// waiting for EPOLLRDHUP: one goroutine for all the connections watched, no read on any of them
// (their bytes are never touched), and nothing to undo before the server reads the connection
// again but the registration.
type hangupWatcher struct {
	epfd    int
	closed  atomic.Bool
	mu      sync.Mutex
	next    uint64
	watched map[uint64]func()
}

func newHangupWatcher() (*hangupWatcher, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	w := &hangupWatcher{epfd: epfd, watched: map[uint64]func(){}}
	go w.run()
	return w, nil
}

// watch calls gone once the client closes conn, until stop. A connection that cannot be watched
// (not a socket) is not: its request runs to its end.
func (w *hangupWatcher) watch(conn net.Conn, gone func()) (stop func()) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return func() {}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	w.mu.Lock()
	w.next++
	id := w.next
	w.watched[id] = gone
	w.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLONESHOT, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
	var added bool
	_ = raw.Control(func(fd uintptr) { added = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev) == nil })
	return func() {
		w.mu.Lock()
		delete(w.watched, id)
		w.mu.Unlock()
		if added {
			_ = raw.Control(func(fd uintptr) { _ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
		}
	}
}

func (w *hangupWatcher) run() {
	defer unix.Close(w.epfd)
	events := make([]unix.EpollEvent, 64)
	for !w.closed.Load() {
		// A timeout, so that close is noticed; an idle watcher wakes once a second.
		n, err := unix.EpollWait(w.epfd, events, 1000)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		for _, ev := range events[:max(n, 0)] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			w.mu.Lock()
			gone := w.watched[id]
			delete(w.watched, id)
			w.mu.Unlock()
			if gone != nil {
				gone()
			}
		}
	}
}

// close stops the watcher within a second (its wait's timeout).
func (w *hangupWatcher) close() { w.closed.Store(true) }
