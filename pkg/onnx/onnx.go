package onnx

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// Provider names an ONNX Runtime execution provider.
type Provider string

// The execution providers facestream knows how to configure.
const (
	CPU      Provider = "cpu"
	CUDA     Provider = "cuda"
	TensorRT Provider = "tensorrt"
)

// ParseProvider turns a configuration string into a Provider. The empty
// string means CPU.
func ParseProvider(s string) (Provider, error) {
	switch p := Provider(strings.ToLower(strings.TrimSpace(s))); p {
	case "", CPU:
		return CPU, nil
	case CUDA, TensorRT:
		return p, nil
	default:
		return "", fmt.Errorf("parse provider %q: want cpu, cuda or tensorrt", s)
	}
}

// Errors callers can test with errors.Is.
var (
	// ErrProviderUnavailable means a requested execution provider could not be
	// attached (its libraries or device are missing).
	ErrProviderUnavailable = errors.New("execution provider unavailable")
	// ErrClosed means the Runtime or Session was closed.
	ErrClosed = errors.New("onnx: closed")
	// ErrInvalidInput means Run was given the wrong number of tensors, or a
	// tensor whose shape or length does not fit the model. Nothing was run.
	ErrInvalidInput = errors.New("invalid input")
)

// RuntimeConfig configures the process's ONNX Runtime environment.
type RuntimeConfig struct {
	// LibraryPath is the path of libonnxruntime.so (ORT >= 1.29), or a bare
	// file name for the dynamic loader to find. Required.
	LibraryPath string
	// Logger receives provider fallbacks and other notices; nil discards them.
	Logger *slog.Logger
}

// Runtime is a handle on the process's ONNX Runtime environment. ORT allows
// one environment per process, so Open reference-counts: opening again with
// the same library shares the environment, and the last Close destroys it.
//
// A Runtime is safe for concurrent use. It owns the sessions created from it:
// Close closes them (waiting for their runs in flight) before it lets go of
// the environment.
type Runtime struct {
	log *slog.Logger

	mu       sync.Mutex
	closed   bool
	sessions map[*Session]struct{}
}

// envState is ORT's process-wide environment, which the library itself keeps
// global; this mirrors it so that Open and Close can be reference-counted.
var envState struct {
	sync.Mutex
	refs int
	lib  string
}

// Open initialises ONNX Runtime from cfg.LibraryPath, or shares the already
// open environment.
func Open(cfg RuntimeConfig) (*Runtime, error) {
	if cfg.LibraryPath == "" {
		return nil, errors.New("open onnx runtime: no library path (set FACESTREAM_ORT_LIB; scripts/setup.sh installs it)")
	}
	lib := cfg.LibraryPath
	if strings.ContainsRune(lib, filepath.Separator) { // a path, not a name for the loader
		abs, err := filepath.Abs(lib)
		if err != nil {
			return nil, fmt.Errorf("open onnx runtime: %w", err)
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("open onnx runtime: %w (run scripts/setup.sh)", err)
		}
		lib = abs
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rt := &Runtime{log: log, sessions: make(map[*Session]struct{})}
	envState.Lock()
	defer envState.Unlock()
	if envState.refs > 0 {
		if envState.lib != lib {
			return nil, fmt.Errorf("open onnx runtime: already open with %s, cannot switch to %s", envState.lib, lib)
		}
		envState.refs++
		return rt, nil
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelFatal()); err != nil {
		return nil, fmt.Errorf("open onnx runtime %s: %w", lib, err)
	}
	if err := ort.DisableTelemetry(); err != nil {
		log.Warn("disable onnx runtime telemetry", "err", err)
	}
	envState.refs, envState.lib = 1, lib
	return rt, nil
}

// Version reports the ONNX Runtime library version.
func (r *Runtime) Version() string { return ort.GetVersion() }

// Close closes every session still open on this handle (each waits for its
// runs in flight), then releases the handle; the last handle destroys the
// environment. It is idempotent: later calls return nil.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	open := make([]*Session, 0, len(r.sessions))
	for s := range r.sessions {
		open = append(open, s)
	}
	r.mu.Unlock()

	var errs []error
	for _, s := range open {
		errs = append(errs, s.Close())
	}
	envState.Lock()
	defer envState.Unlock()
	envState.refs--
	if envState.refs == 0 {
		envState.lib = ""
		if err := ort.DestroyEnvironment(); err != nil {
			errs = append(errs, fmt.Errorf("close onnx runtime: %w", err))
		}
	}
	return errors.Join(errs...)
}

// register adds s to the sessions Close will close; false if r is closed.
func (r *Runtime) register(s *Session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.sessions[s] = struct{}{}
	return true
}

// Providers returns the execution provider each open session actually runs
// on, by model file name: the configured one, or CPU where FallbackToCPU
// replaced an unavailable provider.
func (r *Runtime) Providers() map[string]Provider {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Provider, len(r.sessions))
	for s := range r.sessions {
		out[s.name] = s.provider
	}
	return out
}

func (r *Runtime) forget(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sessions, s)
}

func (r *Runtime) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// TensorInfo describes a model input or output. Dynamic dimensions are -1.
type TensorInfo struct {
	Name  string
	Shape []int64
}

// Tensor is a float32 tensor in Go memory, row-major.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// NewTensor returns a zeroed tensor of the given shape.
func NewTensor(shape ...int64) Tensor {
	return Tensor{Shape: shape, Data: make([]float32, elements(shape))}
}

func elements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// SessionConfig configures one model session.
type SessionConfig struct {
	// IntraOpThreads and InterOpThreads bound ORT's own thread pools; 0 lets ORT choose.
	IntraOpThreads, InterOpThreads int
	// Provider is the execution provider (CPU when empty).
	Provider Provider
	// DeviceID selects the GPU for CUDA and TensorRT.
	DeviceID int
	// FallbackToCPU runs on the CPU when Provider cannot be attached, instead of failing.
	FallbackToCPU bool
	// Inputs and Outputs name the tensors to feed and fetch; empty means all, in model order.
	Inputs, Outputs []string
	// NoSpinning turns off the busy-waiting of ORT's intra-op threads
	// between operators (session.intra_op.allow_spinning = 0). Spinning
	// lowers latency on an idle machine but burns the cores that image
	// decoding and the rest of the pipeline need; see docs/benchmarks.md.
	NoSpinning bool
	// Observe, when not nil, is called after every native run of the
	// session with the model's file name (without .onnx), the batch size
	// (the first dimension of the first input) and the time the run took.
	// It must be cheap and safe for concurrent use (a histogram).
	Observe func(model string, batch int, d time.Duration)
}

// Session is a loaded model. It is safe for concurrent use by multiple
// goroutines: ONNX Runtime allows concurrent runs on one session, and Close
// waits for the runs in flight. A Session holds native memory until Close.
type Session struct {
	mu       sync.RWMutex // Run holds it shared, Close exclusively
	s        *ort.DynamicAdvancedSession
	rt       *Runtime
	inputs   []TensorInfo
	outputs  []TensorInfo
	provider Provider
	path     string
	name     string // base name of path, for errors
	observe  func(model string, batch int, d time.Duration)

	// runHook, when set (tests only), is called by Run while it holds the
	// read lock, just before the native run.
	runHook func()
}

// NewSession loads the model at path. Every input and output it uses must be
// a float32 tensor.
func (r *Runtime) NewSession(path string, cfg SessionConfig) (*Session, error) {
	if r.isClosed() {
		return nil, fmt.Errorf("load model %s: %w", path, ErrClosed)
	}
	ins, outs, err := modelInfo(path)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	inputs, err := pick(ins, cfg.Inputs)
	if err != nil {
		return nil, fmt.Errorf("load model %s: inputs: %w", path, err)
	}
	outputs, err := pick(outs, cfg.Outputs)
	if err != nil {
		return nil, fmt.Errorf("load model %s: outputs: %w", path, err)
	}
	provider := cfg.Provider
	if provider == "" {
		provider = CPU
	}
	s, err := newSession(path, names(inputs), names(outputs), cfg, provider)
	if err != nil && errors.Is(err, ErrProviderUnavailable) && cfg.FallbackToCPU {
		r.log.Warn("execution provider unavailable, falling back to cpu", "model", path, "provider", provider, "err", err)
		provider = CPU
		s, err = newSession(path, names(inputs), names(outputs), cfg, provider)
	}
	if err != nil {
		return nil, err
	}
	sess := &Session{s: s, rt: r, inputs: inputs, outputs: outputs, provider: provider, path: path, name: filepath.Base(path), observe: cfg.Observe}
	if !r.register(sess) {
		_ = s.Destroy()
		return nil, fmt.Errorf("load model %s: %w", path, ErrClosed)
	}
	return sess, nil
}

// modelInfo reads a model's inputs and outputs through a throwaway session
// with graph optimisation off, which keeps the probe cheap.
func modelInfo(path string) (ins, outs []ort.InputOutputInfo, err error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, nil, fmt.Errorf("session options: %w", err)
	}
	defer opts.Destroy()
	if err := opts.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll); err != nil {
		return nil, nil, fmt.Errorf("session options: %w", err)
	}
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		return nil, nil, fmt.Errorf("session options: %w", err)
	}
	return ort.GetInputOutputInfoWithOptions(path, opts)
}

func newSession(path string, in, out []string, cfg SessionConfig, p Provider) (*ort.DynamicAdvancedSession, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	defer opts.Destroy()
	if cfg.IntraOpThreads > 0 {
		if err := opts.SetIntraOpNumThreads(cfg.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("set intra-op threads: %w", err)
		}
	}
	if cfg.InterOpThreads > 0 {
		if err := opts.SetInterOpNumThreads(cfg.InterOpThreads); err != nil {
			return nil, fmt.Errorf("set inter-op threads: %w", err)
		}
	}
	if cfg.NoSpinning {
		if err := opts.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return nil, fmt.Errorf("disable intra-op spinning: %w", err)
		}
	}
	if err := appendProvider(opts, p, cfg.DeviceID); err != nil {
		return nil, fmt.Errorf("load model %s on %s: %w", path, p, err)
	}
	s, err := ort.NewDynamicAdvancedSession(path, in, out, opts)
	if err != nil {
		if p != CPU {
			return nil, fmt.Errorf("load model %s on %s: %w: %w", path, p, ErrProviderUnavailable, err)
		}
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	return s, nil
}

func appendProvider(opts *ort.SessionOptions, p Provider, device int) error {
	dev := map[string]string{"device_id": fmt.Sprint(device)}
	switch p {
	case CPU:
		return nil
	case CUDA:
		po, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
		}
		defer po.Destroy()
		if err := po.Update(dev); err != nil {
			return fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
		}
		if err := opts.AppendExecutionProviderCUDA(po); err != nil {
			return fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
		}
		return nil
	case TensorRT:
		po, err := ort.NewTensorRTProviderOptions()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
		}
		defer po.Destroy()
		if err := po.Update(dev); err != nil {
			return fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
		}
		if err := opts.AppendExecutionProviderTensorRT(po); err != nil {
			return fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
		}
		return nil
	default:
		return fmt.Errorf("unknown provider %q", p)
	}
}

func pick(all []ort.InputOutputInfo, want []string) ([]TensorInfo, error) {
	type entry struct {
		info  TensorInfo
		float bool
	}
	byName := make(map[string]entry, len(all))
	var infos []TensorInfo
	for _, io := range all {
		if io.OrtValueType != ort.ONNXTypeTensor {
			continue
		}
		ti := TensorInfo{Name: io.Name, Shape: append([]int64(nil), io.Dimensions...)}
		byName[io.Name] = entry{ti, io.DataType == ort.TensorElementDataTypeFloat}
		infos = append(infos, ti)
	}
	if len(want) == 0 {
		want = names(infos)
	}
	out := make([]TensorInfo, 0, len(want))
	for _, n := range want {
		e, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("model has no tensor %q (has %v)", n, names(infos))
		}
		if !e.float {
			return nil, fmt.Errorf("tensor %q is not float32 (pkg/onnx feeds and fetches float32 only)", n)
		}
		out = append(out, e.info)
	}
	return out, nil
}

func names(infos []TensorInfo) []string {
	n := make([]string, len(infos))
	for i, t := range infos {
		n[i] = t.Name
	}
	return n
}

// Inputs describes the tensors Run takes, in order.
func (s *Session) Inputs() []TensorInfo { return s.inputs }

// Outputs describes the tensors Run returns, in order.
func (s *Session) Outputs() []TensorInfo { return s.outputs }

// Provider is the execution provider the session really runs on.
func (s *Session) Provider() Provider { return s.provider }

// Path is the model file the session was loaded from.
func (s *Session) Path() string { return s.path }

// checkInputs validates the inputs against the model before anything native
// is touched: the count, each tensor's rank and fixed dimensions, and that its
// data holds exactly the elements its shape says.
func (s *Session) checkInputs(inputs []Tensor) error {
	if len(inputs) != len(s.inputs) {
		return fmt.Errorf("run %s: got %d inputs, model takes %d %v: %w", s.name, len(inputs), len(s.inputs), names(s.inputs), ErrInvalidInput)
	}
	for i, t := range inputs {
		info := s.inputs[i]
		if err := fits(t, info.Shape); err != nil {
			return fmt.Errorf("run %s: input %s: %w: %w", s.name, info.Name, err, ErrInvalidInput)
		}
	}
	return nil
}

// fits reports why t cannot be fed where a model declares shape want (-1 for
// dynamic dimensions; an empty want declares nothing).
func fits(t Tensor, want []int64) error {
	if len(t.Shape) == 0 {
		return errors.New("tensor has no shape")
	}
	for _, d := range t.Shape {
		if d <= 0 {
			return fmt.Errorf("shape %v has a dimension <= 0", t.Shape)
		}
	}
	if len(want) > 0 {
		if len(t.Shape) != len(want) {
			return fmt.Errorf("shape %v has rank %d, model takes %v", t.Shape, len(t.Shape), want)
		}
		for i, d := range want {
			if d > 0 && t.Shape[i] != d {
				return fmt.Errorf("shape %v, model takes %v (dimension %d must be %d)", t.Shape, want, i, d)
			}
		}
	}
	if n := elements(t.Shape); int64(len(t.Data)) != n {
		return fmt.Errorf("%d values for shape %v, want %d", len(t.Data), t.Shape, n)
	}
	return nil
}

// Run feeds one tensor per input (in Inputs order) and returns one Go-owned
// tensor per output (in Outputs order). Inputs are read, never written or
// kept. Every native value is released before Run returns. Safe for
// concurrent use. Errors wrap ErrInvalidInput (nothing ran) or ErrClosed.
func (s *Session) Run(inputs ...Tensor) ([]Tensor, error) {
	if err := s.checkInputs(inputs); err != nil {
		return nil, err
	}
	out := make([]ort.Value, len(s.outputs)) // nil: ORT allocates them
	if err := s.run(inputs, out); err != nil {
		return nil, err
	}
	defer destroy(out)
	res := make([]Tensor, len(out))
	for i, v := range out {
		t, ok := v.(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("run %s: output %s is %T, want a float32 tensor", s.name, s.outputs[i].Name, v)
		}
		// The library has already copied the output out of ORT's memory into
		// a fresh Go slice (wrapped by a tensor that does not own it), so the
		// slice is taken as it is: copying it again would double the cost.
		// Destroy (deferred) releases only the native wrapper.
		res[i] = Tensor{Shape: t.GetShape(), Data: t.GetData()}
	}
	return res, nil
}

// RunInto is Run with outputs the caller provides, so ORT writes straight
// into Go memory the caller may reuse from run to run: no output is
// allocated or copied. outputs must hold one tensor per output, in Outputs
// order, each with exactly the shape the model produces for these inputs
// (learn it from one Run). A wrong count or length wraps ErrInvalidInput; a
// shape the model does not produce is reported by ONNX Runtime.
func (s *Session) RunInto(outputs []Tensor, inputs ...Tensor) error {
	if err := s.checkInputs(inputs); err != nil {
		return err
	}
	if len(outputs) != len(s.outputs) {
		return fmt.Errorf("run %s: got %d outputs, model gives %d %v: %w", s.name, len(outputs), len(s.outputs), names(s.outputs), ErrInvalidInput)
	}
	for i, t := range outputs {
		if err := fits(t, nil); err != nil {
			return fmt.Errorf("run %s: output %s: %w: %w", s.name, s.outputs[i].Name, err, ErrInvalidInput)
		}
	}
	out := make([]ort.Value, len(outputs))
	defer destroy(out)
	for i, t := range outputs {
		v, err := newValue(t)
		if err != nil {
			return fmt.Errorf("run %s: output %s: %w", s.name, s.outputs[i].Name, err)
		}
		out[i] = v
	}
	return s.run(inputs, out)
}

// run wraps the inputs (no copy: ORT reads the Go slices), runs under the
// read lock, and releases the input wrappers. Outputs that are nil are
// allocated by the library; the caller destroys out.
func (s *Session) run(inputs []Tensor, out []ort.Value) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.s == nil {
		return fmt.Errorf("run %s: %w", s.name, ErrClosed)
	}
	in := make([]ort.Value, len(inputs))
	defer destroy(in)
	for i, t := range inputs {
		v, err := newValue(t)
		if err != nil {
			return fmt.Errorf("run %s: input %s: %w", s.name, s.inputs[i].Name, err)
		}
		in[i] = v
	}
	if s.runHook != nil {
		s.runHook()
	}
	unset := countNil(out)
	start := time.Now()
	err := s.s.Run(in, out)
	if s.observe != nil && err == nil {
		batch := 1
		if len(inputs) > 0 && len(inputs[0].Shape) > 0 {
			batch = int(inputs[0].Shape[0])
		}
		s.observe(strings.TrimSuffix(s.name, ".onnx"), batch, time.Since(start))
	}
	liveValues.Add(int64(unset - countNil(out))) // the outputs the library allocated
	if err != nil {
		return fmt.Errorf("run %s: %w", s.name, err)
	}
	return nil
}

// liveValues counts the native values (ORT tensor wrappers) this package
// has created and not yet destroyed. Every Run returns it to where it was;
// the tests check that.
var liveValues atomic.Int64

// newValue wraps a Go tensor as a native value without copying it.
func newValue(t Tensor) (ort.Value, error) {
	v, err := ort.NewTensor(ort.Shape(t.Shape), t.Data)
	if err != nil {
		return nil, err
	}
	liveValues.Add(1)
	return v, nil
}

func countNil(vs []ort.Value) int {
	n := 0
	for _, v := range vs {
		if v == nil {
			n++
		}
	}
	return n
}

func destroy(vs []ort.Value) {
	for _, v := range vs {
		if v != nil {
			_ = v.Destroy()
			liveValues.Add(-1)
		}
	}
}

// Close waits for the runs in flight, then releases the native session.
// Later runs fail with ErrClosed. It is idempotent: later calls return nil.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	if s.rt != nil {
		s.rt.forget(s)
	}
	if err != nil {
		return fmt.Errorf("close session %s: %w", s.path, err)
	}
	return nil
}
