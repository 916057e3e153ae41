package onnx_test

import (
	"bytes"
	"errors"
	"image"
	_ "image/jpeg"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/facestream/facestream/pkg/onnx"
)

// letterbox turns an image into SCRFD's input: RGB, (x-127.5)/128, scaled
// (nearest neighbour, aspect kept) into the top-left of a size×size canvas
// padded with zeros. Good enough to prove the model sees faces; the real
// pre-processing lives in internal/imaging.
func letterbox(img image.Image, size int) onnx.Tensor {
	t := onnx.NewTensor(1, 3, int64(size), int64(size))
	b := img.Bounds()
	scale := float64(size) / float64(max(b.Dx(), b.Dy()))
	w, h := int(float64(b.Dx())*scale), int(float64(b.Dy())*scale)
	plane := size * size
	for y := range h {
		for x := range w {
			r, g, bl, _ := img.At(b.Min.X+int(float64(x)/scale), b.Min.Y+int(float64(y)/scale)).RGBA()
			i := y*size + x
			t.Data[i] = (float32(r>>8) - 127.5) / 128
			t.Data[plane+i] = (float32(g>>8) - 127.5) / 128
			t.Data[2*plane+i] = (float32(bl>>8) - 127.5) / 128
		}
	}
	return t
}

func maxScore(out []onnx.Tensor) (best float32, above int) {
	for _, t := range out[:3] { // scores, strides 8/16/32
		for _, v := range t.Data {
			best = max(best, v)
			if v >= 0.5 {
				above++
			}
		}
	}
	return best, above
}

// TestSCRFDRunsOnARealPhoto runs SCRFD-500M at 640×640 on a photo of two
// people: it must report the outputs in model order with the shapes the
// manifest promises, find faces there, and find none in a blank image.
func TestSCRFDRunsOnARealPhoto(t *testing.T) {
	s := openSession(t, scrfd500M, onnx.SessionConfig{})
	if got := s.Inputs(); len(got) != 1 || got[0].Name != "input.1" || !slices.Equal(got[0].Shape, []int64{1, 3, -1, -1}) {
		t.Fatalf("inputs = %v", got)
	}
	wantNames := []string{"443", "468", "493", "446", "471", "496", "449", "474", "499"}
	var names []string
	for _, o := range s.Outputs() {
		names = append(names, o.Name)
	}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("outputs = %v, want %v", names, wantNames)
	}

	f, err := os.Open(mustFile(t, "FACESTREAM_TESTDATA", "deepface/couple.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Run(letterbox(img, 640))
	if err != nil {
		t.Fatal(err)
	}
	wantShapes := "[12800 1][3200 1][800 1][12800 4][3200 4][800 4][12800 10][3200 10][800 10]"
	if got := shapesOf(out); got != wantShapes {
		t.Fatalf("output shapes %s, want %s", got, wantShapes)
	}
	best, above := maxScore(out)
	t.Logf("couple.jpg: best score %.3f, %d anchors >= 0.5", best, above)
	if best < 0.5 || above == 0 {
		t.Errorf("no face found in couple.jpg (best score %.3f)", best)
	}

	blank, err := s.Run(onnx.NewTensor(1, 3, 640, 640)) // mid-grey after normalisation
	if err != nil {
		t.Fatal(err)
	}
	if best, _ := maxScore(blank); best >= 0.5 {
		t.Errorf("blank image scored %.3f, want < 0.5", best)
	}
}

// TestDynamicBatchEqualsPerItem feeds MobileFaceNet batches of 1, 4 and 8:
// each row of a batched output must equal the output of that item alone.
func TestDynamicBatchEqualsPerItem(t *testing.T) {
	s := openSession(t, mobileFaceNet, onnx.SessionConfig{})
	const n = 8
	items := make([]onnx.Tensor, n)
	single := make([][]float32, n)
	for i := range items {
		items[i] = pseudoRandom(uint32(i), 1, 3, 112, 112)
		out, err := s.Run(items[i])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(out[0].Shape, []int64{1, 128}) {
			t.Fatalf("batch 1 output shape %v, want [1 128]", out[0].Shape)
		}
		single[i] = out[0].Data
	}
	for _, b := range []int{1, 4, 8} {
		out, err := s.Run(stack(items[:b]...))
		if err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
		if !slices.Equal(out[0].Shape, []int64{int64(b), 128}) {
			t.Fatalf("batch %d: output shape %v", b, out[0].Shape)
		}
		var worst float64
		for i := range b {
			worst = max(worst, maxDiff(t, out[0].Data[i*128:(i+1)*128], single[i]))
		}
		t.Logf("batch %d: max |batched - single| = %.2g", b, worst)
		if worst > 1e-4 {
			t.Errorf("batch %d: rows differ from per-item runs by %.2g", b, worst)
		}
	}
}

// TestConcurrentRunsEqualSerial shares one session of each model among many
// goroutines (run it with -race): every result must equal the serial one.
func TestConcurrentRunsEqualSerial(t *testing.T) {
	type job struct {
		s    *onnx.Session
		in   onnx.Tensor
		want []onnx.Tensor
	}
	det := openSession(t, scrfd500M, onnx.SessionConfig{})
	rec := openSession(t, mobileFaceNet, onnx.SessionConfig{})
	var jobs []job
	for i := range 6 {
		jobs = append(jobs, job{s: det, in: pseudoRandom(uint32(100+i), 1, 3, 160, 160)})
		jobs = append(jobs, job{s: rec, in: pseudoRandom(uint32(200+i), int64(1+i%3), 3, 112, 112)})
	}
	for i := range jobs {
		out, err := jobs[i].s.Run(jobs[i].in)
		if err != nil {
			t.Fatal(err)
		}
		jobs[i].want = out
	}

	const workers, rounds = 8, 3
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	diffs := make([]float64, workers)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				for k := range jobs {
					j := jobs[(k+w*5+r)%len(jobs)] // a different order per worker
					got, err := j.s.Run(j.in)
					if err != nil {
						errs <- err
						return
					}
					for o := range got {
						if !slices.Equal(got[o].Shape, j.want[o].Shape) {
							errs <- errors.New("shape differs from the serial run")
							return
						}
						diffs[w] = max(diffs[w], maxDiff(t, got[o].Data, j.want[o].Data))
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := onnx.LiveNativeValues(); n != 0 {
		t.Errorf("%d native tensor wrappers alive after the runs, want 0", n)
	}
	worst := slices.Max(diffs)
	t.Logf("%d goroutines × %d runs: max |concurrent - serial| = %.2g", workers, rounds*len(jobs), worst)
	if worst > 1e-6 {
		t.Errorf("concurrent results differ from serial ones by %.2g", worst)
	}
}

// TestInvalidInputs checks that malformed inputs are refused before anything
// runs, with an error that wraps ErrInvalidInput and names the problem.
func TestInvalidInputs(t *testing.T) {
	det := openSession(t, scrfd500M, onnx.SessionConfig{})
	rec := openSession(t, mobileFaceNet, onnx.SessionConfig{})
	ok := onnx.NewTensor(1, 3, 160, 160)
	cases := []struct {
		name   string
		s      *onnx.Session
		inputs []onnx.Tensor
		want   string
	}{
		{"no inputs", det, nil, "got 0 inputs, model takes 1 [input.1]"},
		{"two inputs", det, []onnx.Tensor{ok, ok}, "got 2 inputs, model takes 1"},
		{"short data", det, []onnx.Tensor{{Shape: []int64{1, 3, 160, 160}, Data: make([]float32, 10)}}, "input input.1: 10 values for shape [1 3 160 160], want 76800"},
		{"long data", det, []onnx.Tensor{{Shape: []int64{1, 3, 4, 4}, Data: make([]float32, 49)}}, "49 values for shape [1 3 4 4], want 48"},
		{"wrong rank", det, []onnx.Tensor{onnx.NewTensor(3, 160, 160)}, "has rank 3, model takes [1 3 -1 -1]"},
		{"four channels", det, []onnx.Tensor{onnx.NewTensor(1, 4, 160, 160)}, "dimension 1 must be 3"},
		{"batch of two on a batch-1 model", det, []onnx.Tensor{onnx.NewTensor(2, 3, 160, 160)}, "dimension 0 must be 1"},
		{"wrong crop size", rec, []onnx.Tensor{onnx.NewTensor(1, 3, 96, 96)}, "input input: shape [1 3 96 96], model takes [-1 3 112 112] (dimension 2 must be 112)"},
		{"zero batch", rec, []onnx.Tensor{{Shape: []int64{0, 3, 112, 112}}}, "has a dimension <= 0"},
		{"no shape", rec, []onnx.Tensor{{Data: make([]float32, 3)}}, "tensor has no shape"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := c.s.Run(c.inputs...)
			if !errors.Is(err, onnx.ErrInvalidInput) {
				t.Fatalf("Run = %v, %v; want an error wrapping ErrInvalidInput", out, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

// TestRunIntoReusesCallerBuffers checks that RunInto writes into the
// caller's tensors, equals Run, can reuse the same buffers, and refuses
// outputs of the wrong count or size.
func TestRunIntoReusesCallerBuffers(t *testing.T) {
	s := openSession(t, mobileFaceNet, onnx.SessionConfig{})
	a, b := pseudoRandom(1, 2, 3, 112, 112), pseudoRandom(2, 2, 3, 112, 112)
	wantA, err := s.Run(a)
	if err != nil {
		t.Fatal(err)
	}
	wantB, err := s.Run(b)
	if err != nil {
		t.Fatal(err)
	}
	bufs := []onnx.Tensor{onnx.NewTensor(2, 128)}
	backing := &bufs[0].Data[0]
	for _, c := range []struct {
		in   onnx.Tensor
		want []onnx.Tensor
	}{{a, wantA}, {b, wantB}, {a, wantA}} {
		if err := s.RunInto(bufs, c.in); err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(t, bufs[0].Data, c.want[0].Data); d != 0 {
			t.Fatalf("RunInto differs from Run by %.2g", d)
		}
	}
	if &bufs[0].Data[0] != backing {
		t.Error("RunInto replaced the caller's buffer")
	}

	if err := s.RunInto(nil, a); !errors.Is(err, onnx.ErrInvalidInput) || !strings.Contains(err.Error(), "got 0 outputs, model gives 1 [embedding]") {
		t.Errorf("no outputs: %v", err)
	}
	short := []onnx.Tensor{{Shape: []int64{2, 128}, Data: make([]float32, 128)}}
	if err := s.RunInto(short, a); !errors.Is(err, onnx.ErrInvalidInput) || !strings.Contains(err.Error(), "output embedding: 128 values for shape [2 128], want 256") {
		t.Errorf("short output: %v", err)
	}
	if err := s.RunInto([]onnx.Tensor{onnx.NewTensor(3, 128)}, a); err == nil {
		t.Error("RunInto accepted an output of the wrong shape")
	}

	// ORT checks caller outputs against the shapes the model declares:
	// det_500m declares those of a 640×640 input, so RunInto works there
	// and is refused at other sizes (where Run still works).
	det := openSession(t, scrfd500M, onnx.SessionConfig{})
	small := onnx.NewTensor(1, 3, 192, 192)
	got, err := det.Run(small)
	if err != nil {
		t.Fatal(err)
	}
	bufs = make([]onnx.Tensor, len(got))
	for i, o := range got {
		bufs[i] = onnx.NewTensor(o.Shape...)
	}
	if err := det.RunInto(bufs, small); err == nil || !strings.Contains(err.Error(), "invalid dimensions for output: 443") {
		t.Errorf("RunInto at 192x192 on det_500m = %v, want ORT's refusal", err)
	}
}

// TestOutputsAreGoOwned checks that outputs outlive the session and are
// fresh for every run.
func TestOutputsAreGoOwned(t *testing.T) {
	s, err := sharedRuntime(t).NewSession(modelPath(t, mobileFaceNet), onnx.SessionConfig{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	in := pseudoRandom(7, 1, 3, 112, 112)
	first, err := s.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	keep := slices.Clone(first[0].Data)
	second, err := s.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	second[0].Data[0] += 42 // must not touch the first result
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(t, first[0].Data, keep); d != 0 {
		t.Fatalf("first output changed after another run and Close (by %.2g)", d)
	}
}

// TestSessionClose checks that Close is idempotent and that runs after it
// fail with ErrClosed. That Close waits for runs in flight is proven in
// close_internal_test.go.
func TestSessionClose(t *testing.T) {
	s, err := sharedRuntime(t).NewSession(modelPath(t, mobileFaceNet), onnx.SessionConfig{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	in := onnx.NewTensor(1, 3, 112, 112)
	if _, err := s.Run(in); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if _, err := s.Run(in); !errors.Is(err, onnx.ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	if err := s.RunInto([]onnx.Tensor{onnx.NewTensor(1, 128)}, in); !errors.Is(err, onnx.ErrClosed) {
		t.Errorf("RunInto after Close = %v, want ErrClosed", err)
	}
}

// TestRuntimeHandles checks the reference-counted environment: a second
// handle shares it, closing that handle closes the sessions made from it
// (and only those), and Close is idempotent.
func TestRuntimeHandles(t *testing.T) {
	lib := mustFile(t, "FACESTREAM_ORT_LIB", "")
	sharedSess := openSession(t, mobileFaceNet, onnx.SessionConfig{IntraOpThreads: 1})

	rt, err := onnx.Open(onnx.RuntimeConfig{LibraryPath: lib})
	if err != nil {
		t.Fatal(err)
	}
	if v := rt.Version(); !strings.HasPrefix(v, "1.") {
		t.Errorf("Version = %q", v)
	}
	mine, err := rt.NewSession(modelPath(t, mobileFaceNet), onnx.SessionConfig{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := rt.Close(); err != nil {
			t.Fatalf("Runtime.Close #%d: %v", i+1, err)
		}
	}
	in := onnx.NewTensor(1, 3, 112, 112)
	if _, err := mine.Run(in); !errors.Is(err, onnx.ErrClosed) {
		t.Errorf("session of a closed runtime: Run = %v, want ErrClosed", err)
	}
	if _, err := rt.NewSession(modelPath(t, mobileFaceNet), onnx.SessionConfig{}); !errors.Is(err, onnx.ErrClosed) {
		t.Errorf("NewSession on a closed runtime = %v, want ErrClosed", err)
	}
	if _, err := sharedSess.Run(in); err != nil {
		t.Errorf("closing another handle broke the shared runtime: %v", err)
	}

	other := filepath.Join(t.TempDir(), "libonnxruntime.so")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := onnx.Open(onnx.RuntimeConfig{LibraryPath: other}); err == nil || !strings.Contains(err.Error(), "already open with") {
		t.Errorf("Open with another library while open = %v", err)
	}
	// A bare name is left to the dynamic loader (no file check here); with
	// the environment open from a path, it is refused the same way.
	if _, err := onnx.Open(onnx.RuntimeConfig{LibraryPath: "libonnxruntime.so"}); err == nil || !strings.Contains(err.Error(), "cannot switch to libonnxruntime.so") {
		t.Errorf("Open with a bare library name while open = %v", err)
	}
	if _, err := onnx.Open(onnx.RuntimeConfig{}); err == nil || !strings.Contains(err.Error(), "FACESTREAM_ORT_LIB") {
		t.Errorf("Open without a path = %v", err)
	}
	if _, err := onnx.Open(onnx.RuntimeConfig{LibraryPath: filepath.Join(t.TempDir(), "missing.so")}); err == nil {
		t.Error("Open with a missing library succeeded")
	}
}

func TestNewSessionErrors(t *testing.T) {
	rt := sharedRuntime(t)
	if _, err := rt.NewSession(filepath.Join(t.TempDir(), "missing.onnx"), onnx.SessionConfig{}); err == nil || !strings.Contains(err.Error(), "missing.onnx") {
		t.Errorf("missing model: %v", err)
	}
	_, err := rt.NewSession(modelPath(t, scrfd500M), onnx.SessionConfig{Outputs: []string{"443", "nope"}})
	if err == nil || !strings.Contains(err.Error(), `model has no tensor "nope"`) {
		t.Errorf("unknown output: %v", err)
	}
	s := openSession(t, scrfd500M, onnx.SessionConfig{Outputs: []string{"493", "443"}})
	out, err := s.Run(onnx.NewTensor(1, 3, 160, 160))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Shape[0] != 50 || out[1].Shape[0] != 800 {
		t.Errorf("chosen outputs came back as %s, want [50 1][800 1]", shapesOf(out))
	}
}

func TestParseProvider(t *testing.T) {
	for in, want := range map[string]onnx.Provider{"": onnx.CPU, "cpu": onnx.CPU, " CUDA ": onnx.CUDA, "TensorRT": onnx.TensorRT} {
		if got, err := onnx.ParseProvider(in); err != nil || got != want {
			t.Errorf("ParseProvider(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := onnx.ParseProvider("rocm"); err == nil {
		t.Error("ParseProvider(rocm) succeeded")
	}
}

// TestGPUProvidersOnCPULibrary: the library installed here is CPU-only, so
// CUDA and TensorRT must fail with ErrProviderUnavailable, and with
// FallbackToCPU the session must run on the CPU, say so, and log why.
func TestGPUProvidersOnCPULibrary(t *testing.T) {
	var logs bytes.Buffer
	rt, err := onnx.Open(onnx.RuntimeConfig{
		LibraryPath: mustFile(t, "FACESTREAM_ORT_LIB", ""),
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	path := modelPath(t, mobileFaceNet)
	for _, p := range []onnx.Provider{onnx.CUDA, onnx.TensorRT} {
		t.Run(string(p), func(t *testing.T) {
			s, err := rt.NewSession(path, onnx.SessionConfig{Provider: p})
			if !errors.Is(err, onnx.ErrProviderUnavailable) {
				t.Fatalf("NewSession(%s) = %v, %v; want ErrProviderUnavailable", p, s, err)
			}
			t.Logf("%s: %v", p, err)

			logs.Reset()
			s, err = rt.NewSession(path, onnx.SessionConfig{Provider: p, FallbackToCPU: true, IntraOpThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Provider() != onnx.CPU {
				t.Errorf("Provider() = %q after fallback, want cpu", s.Provider())
			}
			if _, err := s.Run(onnx.NewTensor(1, 3, 112, 112)); err != nil {
				t.Errorf("Run after fallback: %v", err)
			}
			if !strings.Contains(logs.String(), "falling back to cpu") {
				t.Errorf("fallback not logged: %q", logs.String())
			}
		})
	}
}
