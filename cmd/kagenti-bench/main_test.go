package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReadGCTrace(t *testing.T) {
	// Lines as Go 1.26's runtime writes them, with a line of another kind between.
	trace := `gc 1 @0.012s 3%: 0.030+2.4+0.086 ms clock, 0.060+0.54/0.27/0+0.17 ms cpu, 3->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P
scvg: 0 MB released
gc 2 @0.019s 3%: 0.032+1.1+0.043 ms clock, 0.064+0.10/0.45/0.47+0.086 ms cpu, 3->3->17 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P (forced)
`
	path := filepath.Join(t.TempDir(), "gctrace.log")
	if err := os.WriteFile(path, []byte(trace), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readGCTrace(path)
	if err != nil {
		t.Fatal(err)
	}
	// 0.060+0.54+0.27+0+0.17 and 0.064+0.10+0.45+0.47+0.086 ms.
	wantCPU := time.Duration((1.04 + 1.17) * float64(time.Millisecond))
	if got.cycles != 2 || got.maxLiveMB != 17 || (got.cpu-wantCPU).Abs() > time.Microsecond {
		t.Errorf("readGCTrace = %+v, want 2 cycles, %s of CPU, 17 MB live at most", got, wantCPU)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{[]time.Duration{3, 1, 2}, 2},
		{[]time.Duration{4, 1, 3, 2}, 2}, // (2+3)/2 in integer nanoseconds
		{[]time.Duration{7}, 7},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
