package onnx_test

import (
	"bufio"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/facestream/facestream/pkg/onnx"
)

// rssBytes reads the process's resident set size from /proc/self/status
// after a GC that returns freed Go memory to the OS, so that what remains
// is mostly live Go data plus native memory.
func rssBytes(tb testing.TB) int64 {
	tb.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				tb.Fatalf("parse VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// TestNoNativeLeak runs SCRFD-500M 1,000 times through Run and YuNet (whose
// declared output shapes are dynamic) 1,000 times through RunInto, then
// checks two things:
//
//   - every native tensor wrapper created was destroyed (an exact count);
//   - the resident set grew by no more than a small slack over each series.
//     At 160×160 one SCRFD run's outputs are 1,050 anchors × 15 floats =
//     63 KB, so leaking them would add about 63 MB; the 4 MiB slack covers
//     allocator fragmentation and ORT's arena settling. This is a memory
//     bound, not a timing one. (Leaked wrappers alone would add only ~1.7 MB
//     here, which is why they are counted exactly instead.)
func TestNoNativeLeak(t *testing.T) {
	const runs = 1000
	const slack = 4 << 20
	s := openSession(t, scrfd500M, onnx.SessionConfig{IntraOpThreads: 1})
	in := pseudoRandom(3, 1, 3, 160, 160)

	run := func(n int) {
		for range n {
			if _, err := s.Run(in); err != nil {
				t.Fatal(err)
			}
		}
	}
	yunet := openSession(t, yunetDynamic, onnx.SessionConfig{IntraOpThreads: 1})
	small := pseudoRandom(4, 1, 3, 160, 160)
	first, err := yunet.Run(small)
	if err != nil {
		t.Fatal(err)
	}
	bufs := make([]onnx.Tensor, len(first))
	for i, o := range first {
		bufs[i] = onnx.NewTensor(o.Shape...)
	}
	runInto := func(n int) {
		for range n {
			if err := yunet.RunInto(bufs, small); err != nil {
				t.Fatal(err)
			}
		}
	}

	run(100) // warm-up: ORT's arena, thread pool and Go's heap settle
	runInto(100)
	before := rssBytes(t)
	start := time.Now()
	run(runs)
	t.Logf("%d Run: %v", runs, time.Since(start))
	start = time.Now()
	afterRun := rssBytes(t)
	runInto(runs)
	t.Logf("%d RunInto: %v", runs, time.Since(start))
	after := rssBytes(t)

	t.Logf("RSS %.1f MiB → %.1f MiB after %d Run → %.1f MiB after %d RunInto (slack %d MiB)",
		float64(before)/(1<<20), float64(afterRun)/(1<<20), runs, float64(after)/(1<<20), runs, slack>>20)
	if n := onnx.LiveNativeValues(); n != 0 {
		t.Errorf("%d native tensor wrappers still alive after the runs, want 0", n)
	}
	if grow := afterRun - before; grow > slack {
		t.Errorf("RSS grew by %.1f MiB over %d Run calls (allowed %d MiB)", float64(grow)/(1<<20), runs, slack>>20)
	}
	if grow := after - afterRun; grow > slack {
		t.Errorf("RSS grew by %.1f MiB over %d RunInto calls (allowed %d MiB)", float64(grow)/(1<<20), runs, slack>>20)
	}
}
