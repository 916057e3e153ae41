package onnx

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

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

// ParseProvider turns a configuration string into a Provider.
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
)

// RuntimeConfig configures the process's ONNX Runtime environment.
type RuntimeConfig struct {
	// LibraryPath is the path of libonnxruntime.so (ORT >= 1.29). Required.
	LibraryPath string
	// Logger receives provider fallbacks and other notices; nil discards them.
	Logger *slog.Logger
}

// Runtime is the process's ONNX Runtime environment. ORT allows one
// environment per process, so Open reference-counts: opening again with the
// same library shares the environment, and the last Close destroys it.
type Runtime struct {
	log       *slog.Logger
	closeOnce sync.Once
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
	if _, err := os.Stat(cfg.LibraryPath); err != nil {
		return nil, fmt.Errorf("open onnx runtime: %w (run scripts/setup.sh)", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	envState.Lock()
	defer envState.Unlock()
	if envState.refs > 0 {
		if envState.lib != cfg.LibraryPath {
			return nil, fmt.Errorf("open onnx runtime: already open with %s, cannot switch to %s", envState.lib, cfg.LibraryPath)
		}
		envState.refs++
		return &Runtime{log: log}, nil
	}
	ort.SetSharedLibraryPath(cfg.LibraryPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("open onnx runtime %s: %w", cfg.LibraryPath, err)
	}
	if err := ort.DisableTelemetry(); err != nil {
		log.Warn("disable onnx runtime telemetry", "err", err)
	}
	envState.refs, envState.lib = 1, cfg.LibraryPath
	return &Runtime{log: log}, nil
}

// Version reports the ONNX Runtime library version.
func (r *Runtime) Version() string { return ort.GetVersion() }

// Close releases this handle; the last one destroys the environment. Close
// all sessions first. It is idempotent.
func (r *Runtime) Close() error {
	var err error
	r.closeOnce.Do(func() {
		envState.Lock()
		defer envState.Unlock()
		envState.refs--
		if envState.refs == 0 {
			if e := ort.DestroyEnvironment(); e != nil {
				err = fmt.Errorf("close onnx runtime: %w", e)
			}
		}
	})
	return err
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
}

// Session is a loaded model. It is safe for concurrent use by multiple goroutines.
type Session struct {
	mu       sync.RWMutex // Run holds it shared, Close exclusively
	s        *ort.DynamicAdvancedSession
	inputs   []TensorInfo
	outputs  []TensorInfo
	provider Provider
	path     string
}

// NewSession loads the model at path.
func (r *Runtime) NewSession(path string, cfg SessionConfig) (*Session, error) {
	ins, outs, err := ort.GetInputOutputInfo(path)
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
	return &Session{s: s, inputs: inputs, outputs: outputs, provider: provider, path: path}, nil
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
	byName := make(map[string]TensorInfo, len(all))
	var infos []TensorInfo
	for _, io := range all {
		if io.OrtValueType != ort.ONNXTypeTensor {
			continue
		}
		ti := TensorInfo{Name: io.Name, Shape: append([]int64(nil), io.Dimensions...)}
		byName[io.Name] = ti
		infos = append(infos, ti)
	}
	if len(want) == 0 {
		return infos, nil
	}
	out := make([]TensorInfo, 0, len(want))
	for _, n := range want {
		ti, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("model has no tensor %q (has %v)", n, names(infos))
		}
		out = append(out, ti)
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

// Run feeds one tensor per input (in Inputs order) and returns one Go-owned
// tensor per output (in Outputs order). Safe for concurrent use.
func (s *Session) Run(inputs ...Tensor) ([]Tensor, error) {
	if len(inputs) != len(s.inputs) {
		return nil, fmt.Errorf("run %s: got %d inputs, model takes %d", s.path, len(inputs), len(s.inputs))
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.s == nil {
		return nil, ErrClosed
	}
	in := make([]ort.Value, len(inputs))
	defer func() {
		for _, v := range in {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, t := range inputs {
		if int64(len(t.Data)) != elements(t.Shape) {
			return nil, fmt.Errorf("run %s: input %s: %d values for shape %v", s.path, s.inputs[i].Name, len(t.Data), t.Shape)
		}
		v, err := ort.NewTensor(ort.NewShape(t.Shape...), t.Data)
		if err != nil {
			return nil, fmt.Errorf("run %s: input %s: %w", s.path, s.inputs[i].Name, err)
		}
		in[i] = v
	}
	out := make([]ort.Value, len(s.outputs))
	defer func() {
		for _, v := range out {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	if err := s.s.Run(in, out); err != nil {
		return nil, fmt.Errorf("run %s: %w", s.path, err)
	}
	res := make([]Tensor, len(out))
	for i, v := range out {
		t, ok := v.(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("run %s: output %s is %T, want float32 tensor", s.path, s.outputs[i].Name, v)
		}
		res[i] = Tensor{Shape: append([]int64(nil), t.GetShape()...), Data: append([]float32(nil), t.GetData()...)}
	}
	return res, nil
}

// Close releases the native session after runs in flight finish. Idempotent.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	if err != nil {
		return fmt.Errorf("close session %s: %w", s.path, err)
	}
	return nil
}
