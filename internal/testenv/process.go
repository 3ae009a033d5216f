package testenv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is one child of the sandbox: a binary with its arguments, a log file and a health check.
// It runs in its own process group so that stopping it also stops anything it forked (kc.sh
// starts a JVM).
type Process struct {
	Name string
	Path string
	Args []string
	Env  []string
	Dir  string
	// LogPath receives stdout and stderr.
	LogPath string
	// Healthy returns nil once the process serves; it is polled until StartTimeout.
	Healthy      func(ctx context.Context) error
	StartTimeout time.Duration
	StopTimeout  time.Duration

	// Pid is set by Start; it is recorded in the sandbox state so that another command (make
	// sandbox-down) can stop the process by its own PID.
	Pid    int
	exited chan struct{}
	err    error
}

// Start launches the process and waits until it is healthy, it exits, or the timeout passes.
// The process is not tied to ctx: a sandbox outlives the command that started it.
func (p *Process) Start(ctx context.Context) error {
	logFile, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Dir = p.Dir
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.Pid = cmd.Process.Pid
	p.exited = make(chan struct{})
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()

	timeout := p.StartTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if p.Healthy == nil {
			return nil
		}
		if lastErr = p.Healthy(ctx); lastErr == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s stopped unexpectedly before becoming ready (%v); log %s:\n%s", p.Name, p.err, p.LogPath, tailFile(p.LogPath, 30))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v; log %s:\n%s", p.Name, timeout, lastErr, p.LogPath, tailFile(p.LogPath, 30))
		case <-tick.C:
		}
	}
}

// StopPID stops a process group by its leader's PID: SIGTERM, then SIGKILL after timeout. It
// works for processes started by another command, which is how `sandbox-down` stops them.
func StopPID(pid int, cmdlineMustContain string, timeout time.Duration) error {
	if pid <= 0 {
		return nil
	}
	// Guard against PID reuse: only signal the process we started (gone or a zombie: nothing to
	// stop).
	if !Running(pid, cmdlineMustContain) {
		return nil
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	return nil
}

// Running reports whether pid is alive and its command line contains cmdlineMustContain (a
// recorded PID that a reboot or a crash freed may now be another program's).
func Running(pid int, cmdlineMustContain string) bool {
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil || !strings.Contains(string(cmdline), cmdlineMustContain) {
		return false
	}
	return alive(pid)
}

func alive(pid int) bool {
	// A zombie (exited, not yet reaped by its parent) counts as gone.
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// Stop stops the process and waits for it.
func (p *Process) Stop() error {
	if p.exited == nil {
		return nil
	}
	timeout := p.StopTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(timeout):
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	<-p.exited
	return nil
}

// freePorts picks n distinct TCP ports free on every address now. All listeners stay open until
// every port is chosen so the same port is not handed out twice.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	// Below the kernel's ephemeral range: a port it may give an outgoing connection can be
	// taken between the pick and the server's own bind (Keycloak binds half a minute later,
	// while the node's components open hundreds of connections), and the server fails.
	lo, hi := 10000, ephemeralLow()-1
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			return nil, fmt.Errorf("pick a free port: none free among %d tries in %d-%d", tries, lo, hi)
		}
		p := lo + rand.IntN(hi-lo+1)
		if slices.Contains(ports, p) {
			continue
		}
		l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		listeners = append(listeners, l)
		ports = append(ports, p)
	}
	return ports, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 when unreadable).
func ephemeralLow() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if f := strings.Fields(string(data)); err == nil && len(f) == 2 {
		if lo, err := strconv.Atoi(f[0]); err == nil && lo > 11000 {
			return lo
		}
	}
	return 32768
}

// tailFile returns the last n lines of a file, for error messages.
func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
