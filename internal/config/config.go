package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// Config is the configuration of any facestream binary. Each binary reads
// only the settings it uses (see For); the others keep their defaults.
// A Config is a plain value: copy it freely.
type Config struct {
	NATS      NATS
	Database  Database
	Models    Models
	ORT       ORT
	Stage     Stage
	Embed     EmbedBatch
	HTTP      HTTP
	Metrics   Metrics
	Log       Log
	Limits    Limits
	Retention Retention
	Blob      Blob
	Data      Data
	Tracing   Tracing
	Detection Detection
	Search    Search
}

// Search tunes the similarity searches of the HTTP API.
type Search struct {
	// EfSearch is pgvector's hnsw.ef_search for POST /v1/search and
	// /v1/subjects/identify: recall against latency (at least k is used).
	EfSearch int
}

// Tracing configures OpenTelemetry tracing.
type Tracing struct {
	// OTLPEndpoint is the OTLP gRPC collector (host:port); empty turns tracing off.
	OTLPEndpoint string
}

// Detection tunes the detector's extra passes (face.DetectorOptions).
type Detection struct {
	// SecondScale is the size of the second detection pass (0: none).
	SecondScale int
	// Rotations tries the picture turned when no upright face is convincing.
	Rotations bool
	// DecodeMinSide lets the detect stage decode a large JPEG reduced by 2,
	// 4 or 8 while its longer side stays at least this long (0: whole).
	DecodeMinSide int
}

// NATS is how a binary reaches the NATS server.
type NATS struct {
	// URL is one server URL or a comma-separated list; it may carry
	// credentials (nats://user:password@host, nats://token@host).
	URL Secret
	// CredsFile is the path of a NATS credentials (.creds) file; empty for none.
	CredsFile Secret
	// TLSCA, TLSCert and TLSKey are PEM files: the CA that signs the server
	// certificate, and the client certificate and key (both or neither).
	TLSCA, TLSCert, TLSKey string
	// Listen is where the all-in-one process's embedded server listens.
	Listen string
	// Replicas is how many copies JetStream keeps of each stream and bucket
	// (1 on a single server; 3 on a three-node cluster).
	Replicas int
	// WorkMaxPerStage bounds the messages of each subject of the work
	// stream (discard new: a full subject refuses publishes, it never
	// deletes work).
	WorkMaxPerStage int
}

// Database is how a binary reaches PostgreSQL.
type Database struct {
	// URL is a pgx connection string (URL or keyword/value form).
	URL Secret
}

// Models says which model pack to run and where its files are.
type Models struct {
	Dir  string
	Pack string
}

// Execution providers of ONNX Runtime.
const (
	ProviderCPU      = "cpu"
	ProviderCUDA     = "cuda"
	ProviderTensorRT = "tensorrt"
)

// ORT configures ONNX Runtime.
type ORT struct {
	// Library is the path (or the name, for the dynamic loader) of libonnxruntime.so.
	Library string
	// Provider is cpu, cuda or tensorrt.
	Provider string
	// CPUFallback lets a session start on the CPU when the provider is unavailable.
	CPUFallback bool
	// DeviceID is the GPU used by cuda and tensorrt.
	DeviceID int
	// IntraOpThreads and InterOpThreads size ORT's thread pools; 0 lets ORT choose.
	IntraOpThreads, InterOpThreads int
	// Spinning lets intra-op threads busy-wait between operators.
	Spinning bool
}

// Stage configures a pipeline stage's consumer.
type Stage struct {
	// Concurrency is the number of messages a replica works on at once.
	Concurrency int
	// CacheOnly makes ingest answer from the result cache only (inference down).
	CacheOnly bool
}

// EmbedBatch configures the embed stage's batching.
type EmbedBatch struct {
	// BatchSize is the largest number of face crops per recognizer run.
	BatchSize int
	// BatchMaxWait is how long a partial batch waits for more crops; 0 runs at once.
	// 0 by default: on a CPU a face costs the same batched or not, and the wait
	// added to every image's latency whenever the stage is not saturated (the
	// sync-latency benchmark, docs/benchmarks.md); GPU deployments set a few ms.
	BatchMaxWait time.Duration
}

// HTTP configures the HTTP API.
type HTTP struct {
	Addr string
	// CORSOrigins is a comma-separated list of browser origins allowed to call the API ("*": any; empty: none).
	CORSOrigins string
	// RateLimit is the requests per minute of an API key without its own limit.
	RateLimit int
	// AnalyzeTimeout bounds the wait of a synchronous analysis (504 after it).
	AnalyzeTimeout time.Duration
	// MaxBodyBytes bounds a request body (a batch carries several images).
	MaxBodyBytes ByteSize
	// BacklogHighWater is the percentage of WorkMaxPerStage that the whole
	// work stream may hold before new images are refused with 503.
	BacklogHighWater int
}

// Metrics configures the /metrics, /healthz and /readyz listener.
type Metrics struct {
	// Addr is host:port; empty disables the listener.
	Addr string
}

// Log levels and formats.
const (
	LogText = "text"
	LogJSON = "json"
)

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string
	// Format is text or json.
	Format string
}

// Limits bound what the service accepts.
type Limits struct {
	MaxImageBytes ByteSize
	MaxPixels     int
	// InlinePayloadMax is the largest image carried inside a message; larger
	// ones go to the object store. Keep it below the NATS server's max_payload.
	InlinePayloadMax ByteSize
	// CacheEntries bounds the in-process tier of the result cache (resultcache.Config.Entries).
	CacheEntries int
}

// Retention says how long things are kept.
type Retention struct {
	// ImageTTL is the lifetime of an image payload in the object store.
	ImageTTL time.Duration
	// ResultsMaxAge is the max age of the results stream.
	ResultsMaxAge time.Duration
}

// Blob configures encryption at rest of the object store's payloads (see
// docs/reliability.md for rotation).
type Blob struct {
	// Key is the current key, "id:key" (32 bytes, base64 or hex).
	Key Secret
	// KeyFile is a file holding the current key, when Key is empty.
	KeyFile string
	// PreviousKeys are earlier keys, comma-separated, accepted for reading.
	PreviousKeys Secret
}

// Data configures local state of the all-in-one binary.
type Data struct {
	// Dir holds the embedded NATS server's JetStream store.
	Dir string
}

// Default returns the configuration every binary starts from.
func Default() Config {
	return Config{
		NATS:     NATS{URL: Secret("nats://127.0.0.1:4223"), Listen: "127.0.0.1:4223", Replicas: 1, WorkMaxPerStage: 2_000}, // not 4222: a system NATS often holds the standard port
		Database: Database{URL: ""},
		Models:   Models{Dir: "models", Pack: "dev"},
		ORT: ORT{
			Library:     "libonnxruntime.so",
			Provider:    ProviderCPU,
			CPUFallback: true,
			// One intra-op thread per run: the stages' concurrent runs fill
			// the cores better than ORT's thread pool does (docs/benchmarks.md).
			IntraOpThreads: 1,
		},
		Stage:     Stage{Concurrency: 8},
		Embed:     EmbedBatch{BatchSize: 16, BatchMaxWait: 0},
		HTTP:      HTTP{Addr: ":8080", RateLimit: 600, AnalyzeTimeout: 30 * time.Second, MaxBodyBytes: 64 << 20, BacklogHighWater: 50},
		Metrics:   Metrics{Addr: ":9464"},
		Log:       Log{Level: "info", Format: LogText},
		Limits:    Limits{MaxImageBytes: 20 << 20, MaxPixels: 40_000_000, InlinePayloadMax: 768 << 10, CacheEntries: 1024},
		Retention: Retention{ImageTTL: 15 * time.Minute, ResultsMaxAge: 24 * time.Hour},
		Data:      Data{Dir: ".data"},
		Detection: Detection{SecondScale: 320, DecodeMinSide: 640},
		Search:    Search{EfSearch: 100},
	}
}

// Validate checks every setting's value and the rules that tie settings
// together, and returns all problems at once (errors.Join), each naming the
// flag and the environment variable to fix. It does not check that a
// binary's required settings are set: see ValidateFor.
func (c Config) Validate() error {
	var errs []error
	for _, s := range settings {
		if s.check == nil {
			continue
		}
		if err := s.check(s.field(&c)); err != nil {
			errs = append(errs, s.errorf("%w", err))
		}
	}
	if (c.NATS.TLSCert == "") != (c.NATS.TLSKey == "") {
		errs = append(errs, errors.New("nats-tls-cert and nats-tls-key (FACESTREAM_NATS_TLS_CERT, FACESTREAM_NATS_TLS_KEY): set both or neither"))
	}
	if c.Limits.InlinePayloadMax > c.Limits.MaxImageBytes {
		errs = append(errs, fmt.Errorf("inline-payload-max (%s) is larger than max-image-bytes (%s)", c.Limits.InlinePayloadMax, c.Limits.MaxImageBytes))
	}
	return errors.Join(errs...)
}

// ValidateFor is Validate plus the settings binary b requires.
func (c Config) ValidateFor(b Binary) error {
	var errs []error
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	for _, s := range settings {
		if s.RequiredBy(b) && s.format(&c) == "" {
			errs = append(errs, s.errorf("required by %s", b))
		}
	}
	return errors.Join(errs...)
}

// String lists every setting as name=value in table order, secrets redacted.
func (c Config) String() string {
	var b strings.Builder
	for i, s := range settings {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", s.Name, s.display(&c))
	}
	return b.String()
}

// LogValue logs every setting by name, secrets redacted.
func (c Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(settings))
	for _, s := range settings {
		attrs = append(attrs, slog.String(s.Name, s.display(&c)))
	}
	return slog.GroupValue(attrs...)
}

// Logger returns a logger writing to w in the configured format and level.
func (l Log) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(l.Level)) // Validate rejects bad levels; fall back to info
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Checks used by the settings table.

func oneOf(values ...string) func(any) error {
	return func(v any) error {
		s := *v.(*string)
		for _, ok := range values {
			if s == ok {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", s, strings.Join(values, ", "))
	}
}

func atLeast(lo int) func(any) error {
	return func(v any) error {
		if n := *v.(*int); n < lo {
			return fmt.Errorf("must be at least %d, got %d", lo, n)
		}
		return nil
	}
}

func between(lo, hi int) func(any) error {
	return func(v any) error {
		if n := *v.(*int); n < lo || n > hi {
			return fmt.Errorf("must be between %d and %d, got %d", lo, hi, n)
		}
		return nil
	}
}

func positiveDuration(v any) error {
	if d := *v.(*time.Duration); d <= 0 {
		return fmt.Errorf("must be positive, got %s", d)
	}
	return nil
}

func nonNegativeDuration(v any) error {
	if d := *v.(*time.Duration); d < 0 {
		return fmt.Errorf("must not be negative, got %s", d)
	}
	return nil
}

func sizeBetween(lo, hi ByteSize) func(any) error {
	return func(v any) error {
		if n := *v.(*ByteSize); n < lo || n > hi {
			return fmt.Errorf("must be between %s and %s, got %s", lo, hi, n)
		}
		return nil
	}
}

func nonEmpty(v any) error {
	if *v.(*string) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// listenAddr accepts host:port (host may be empty); empty when optional.
func listenAddr(optional bool) func(any) error {
	return func(v any) error {
		s := *v.(*string)
		if s == "" && optional {
			return nil
		}
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("want host:port such as :8080 or 127.0.0.1:8080, got %q", s)
		}
		return nil
	}
}

func natsURLs(v any) error {
	s := v.(*Secret).Value()
	if s == "" {
		return errors.New("must not be empty")
	}
	for _, part := range strings.Split(s, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil || u.Host == "" {
			return fmt.Errorf("%q is not a server URL such as nats://host:4222", Redact(part))
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%q: scheme must be nats, tls, ws or wss", Redact(part))
		}
	}
	return nil
}

func databaseURL(v any) error {
	s := v.(*Secret).Value()
	if s == "" {
		return nil // required-ness is per binary
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return fmt.Errorf("%s is not a postgres:// URL", Redact(s))
		}
		return nil
	}
	if !strings.Contains(s, "=") {
		return errors.New("want a postgres:// URL or keyword=value pairs")
	}
	return nil
}
