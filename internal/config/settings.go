package config

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Binary names a program (or facestream subcommand) that reads settings.
type Binary string

// The binaries of facestream. The five stages are their own executables
// (cmd/<stage>); Run, API and Migrate are facestream subcommands.
const (
	Run       Binary = "run"       // facestream run: everything in one process
	Ingest    Binary = "ingest"    // cmd/ingest
	Detect    Binary = "detect"    // cmd/detect
	Embed     Binary = "embed"     // cmd/embed
	Attrs     Binary = "attrs"     // cmd/attrs
	Aggregate Binary = "aggregate" // cmd/aggregate
	API       Binary = "api"       // the HTTP edge on its own
	Migrate   Binary = "migrate"   // facestream migrate
	// ModelsCommand is facestream models (the name Models is the settings struct).
	ModelsCommand Binary = "models"
)

// Binaries lists every binary, in a fixed order.
func Binaries() []Binary {
	return []Binary{Run, Ingest, Detect, Embed, Attrs, Aggregate, API, Migrate, ModelsCommand}
}

// Groups of binaries used in the table.
var (
	stages     = []Binary{Ingest, Detect, Embed, Attrs, Aggregate}
	natsClient = append(slices.Clone(stages), API)              // connect to an external NATS server
	streamDefs = append(slices.Clone(natsClient), Run)          // apply the stream and bucket definitions
	inference  = []Binary{Detect, Embed, Attrs, Run}            // run ONNX models
	modelFiles = append(slices.Clone(inference), ModelsCommand) // read a model pack's files
	dbClient   = []Binary{Ingest, Aggregate, API, Run, Migrate}
	services   = append(slices.Clone(natsClient), Run)   // long-running, with metrics and health
	everyone   = append(slices.Clone(services), Migrate) // every binary that logs
	imageEdge  = []Binary{Ingest, API, Run}              // validate submitted images
	dbRequired = []Binary{Aggregate, API, Run, Migrate}  // cannot work without PostgreSQL
	embedders  = []Binary{Embed, Run}                    // batch recognizer runs
	httpServer = []Binary{API, Run}                      // serve the HTTP API
	allInOne   = []Binary{Run}                           // only the all-in-one process
)

// Setting is one configuration knob: how it is named on the command line and
// in the environment, what it means, and who reads it.
type Setting struct {
	// Name is the dotted name used in logs and String, e.g. "nats.url".
	Name string
	// Flag is the command-line flag without dashes, e.g. "nats-url".
	Flag string
	// Env is the environment variable, e.g. "FACESTREAM_NATS_URL".
	Env string
	// Help says what the setting means, in one sentence.
	Help string
	// Secret settings are confidential as a whole: they have no default and
	// are redacted whenever printed. (Others are printed with the
	// credentials in their URLs hidden.)
	Secret bool
	// Uses lists the binaries that read the setting.
	Uses []Binary
	// Requires lists the binaries that cannot start without a value.
	Requires []Binary

	field func(*Config) any // a pointer into Config: *string, *Secret, *int, *bool, *time.Duration or *ByteSize
	check func(any) error   // validates the pointed-to value; nil accepts any
}

// settings is THE table. One line per setting; the field and its default
// live in Config and Default.
var settings = []Setting{
	{Name: "nats.url", Flag: "nats-url", Env: "FACESTREAM_NATS_URL", Uses: natsClient, check: natsURLs, Help: "NATS server URL, or a comma-separated list of them", field: func(c *Config) any { return &c.NATS.URL }},
	{Name: "nats.creds", Flag: "nats-creds", Env: "FACESTREAM_NATS_CREDS", Uses: natsClient, Secret: true, Help: "path of the NATS credentials (.creds) file; empty for none", field: func(c *Config) any { return &c.NATS.CredsFile }},
	{Name: "nats.tls_ca", Flag: "nats-tls-ca", Env: "FACESTREAM_NATS_TLS_CA", Uses: natsClient, Help: "PEM file of the CA that signs the NATS server's certificate; empty for the system roots", field: func(c *Config) any { return &c.NATS.TLSCA }},
	{Name: "nats.tls_cert", Flag: "nats-tls-cert", Env: "FACESTREAM_NATS_TLS_CERT", Uses: natsClient, Help: "PEM client certificate for NATS mutual TLS (with nats-tls-key)", field: func(c *Config) any { return &c.NATS.TLSCert }},
	{Name: "nats.tls_key", Flag: "nats-tls-key", Env: "FACESTREAM_NATS_TLS_KEY", Uses: natsClient, Help: "PEM private key of the NATS client certificate", field: func(c *Config) any { return &c.NATS.TLSKey }},
	{Name: "database.url", Flag: "database-url", Env: "FACESTREAM_DATABASE_URL", Uses: dbClient, Requires: dbRequired, Secret: true, check: databaseURL, Help: "PostgreSQL connection string, postgres://user:password@host:5432/db?sslmode=... (ingest: for the result cache, off when empty)", field: func(c *Config) any { return &c.Database.URL }},
	{Name: "models.dir", Flag: "models", Env: "FACESTREAM_MODELS", Uses: modelFiles, check: nonEmpty, Help: "folder holding the model pack's files", field: func(c *Config) any { return &c.Models.Dir }},
	{Name: "models.pack", Flag: "model-pack", Env: "FACESTREAM_MODEL_PACK", Uses: append(slices.Clone(modelFiles), Ingest, API), check: nonEmpty, Help: "name of the model pack to run (also part of the result cache key; the api reads its recognizer threshold)", field: func(c *Config) any { return &c.Models.Pack }},
	{Name: "ort.library", Flag: "ort-lib", Env: "FACESTREAM_ORT_LIB", Uses: inference, check: nonEmpty, Help: "path of libonnxruntime.so (ONNX Runtime >= 1.29), or a name for the dynamic loader to find", field: func(c *Config) any { return &c.ORT.Library }},
	{Name: "ort.provider", Flag: "execution-provider", Env: "FACESTREAM_EXECUTION_PROVIDER", Uses: inference, check: oneOf(ProviderCPU, ProviderCUDA, ProviderTensorRT), Help: "ONNX Runtime execution provider: cpu, cuda or tensorrt", field: func(c *Config) any { return &c.ORT.Provider }},
	{Name: "ort.cpu_fallback", Flag: "cpu-fallback", Env: "FACESTREAM_CPU_FALLBACK", Uses: inference, Help: "run on the CPU when the execution provider cannot be used, instead of failing", field: func(c *Config) any { return &c.ORT.CPUFallback }},
	{Name: "ort.device_id", Flag: "device-id", Env: "FACESTREAM_DEVICE_ID", Uses: inference, check: atLeast(0), Help: "GPU device used by the cuda and tensorrt providers", field: func(c *Config) any { return &c.ORT.DeviceID }},
	{Name: "ort.intra_op_threads", Flag: "intra-op-threads", Env: "FACESTREAM_INTRA_OP_THREADS", Uses: inference, check: between(0, 1024), Help: "threads ONNX Runtime uses inside one operator; 0 lets it choose", field: func(c *Config) any { return &c.ORT.IntraOpThreads }},
	{Name: "ort.inter_op_threads", Flag: "inter-op-threads", Env: "FACESTREAM_INTER_OP_THREADS", Uses: inference, check: between(0, 1024), Help: "threads ONNX Runtime uses across operators; 0 lets it choose", field: func(c *Config) any { return &c.ORT.InterOpThreads }},
	{Name: "ort.spinning", Flag: "ort-spinning", Env: "FACESTREAM_ORT_SPINNING", Uses: inference, Help: "let ONNX Runtime's intra-op threads busy-wait between operators (faster alone, slower beside image decoding on few cores; see docs/benchmarks.md)", field: func(c *Config) any { return &c.ORT.Spinning }},
	{Name: "tracing.otlp_endpoint", Flag: "otlp-endpoint", Env: "FACESTREAM_OTLP_ENDPOINT", Uses: services, Help: "OTLP gRPC endpoint (host:port) that receives OpenTelemetry traces of every stage; empty turns tracing off", field: func(c *Config) any { return &c.Tracing.OTLPEndpoint }},
	{Name: "detect.second_scale", Flag: "detect-second-scale", Env: "FACESTREAM_DETECT_SECOND_SCALE", Uses: inference, check: between(0, 4096), Help: "size of the detector's second pass, which finds faces that fill the picture (0 turns it off: faster, misses close-ups; see docs/benchmarks.md)", field: func(c *Config) any { return &c.Detection.SecondScale }},
	{Name: "detect.decode_min_side", Flag: "detect-decode-min-side", Env: "FACESTREAM_DETECT_DECODE_MIN_SIDE", Uses: []Binary{Detect, Run}, check: between(0, 16384), Help: "decode a large JPEG at 1/2, 1/4 or 1/8 of its size as long as its longer side stays at least this many pixels (the detector's 640 input); faces too small for full-resolution crops are cut from a second, less reduced decode. 0 decodes every picture whole (docs/benchmarks.md)", field: func(c *Config) any { return &c.Detection.DecodeMinSide }},
	{Name: "detect.rotations", Flag: "detect-rotations", Env: "FACESTREAM_DETECT_ROTATIONS", Uses: inference, Help: "when no upright face is convincing, also try the picture turned 90, 180 and 270 degrees: for scans and files without an EXIF orientation; it costs up to 6 more detector runs on every image without a face, so it is off by default (docs/benchmarks.md)", field: func(c *Config) any { return &c.Detection.Rotations }},
	{Name: "stage.concurrency", Flag: "concurrency", Env: "FACESTREAM_CONCURRENCY", Uses: append(slices.Clone(stages), Run), check: between(1, 4096), Help: "messages a stage replica works on at once (its in-flight limit)", field: func(c *Config) any { return &c.Stage.Concurrency }},
	{Name: "stage.cache_only", Flag: "cache-only", Env: "FACESTREAM_CACHE_ONLY", Uses: []Binary{Ingest, Run}, Help: "degraded mode while inference is down: ingest answers from the result cache and rejects other images with the retryable reason inference_unavailable", field: func(c *Config) any { return &c.Stage.CacheOnly }},
	{Name: "embed.batch_size", Flag: "embed-batch-size", Env: "FACESTREAM_EMBED_BATCH_SIZE", Uses: embedders, check: between(1, 1024), Help: "largest number of face crops in one recognizer run", field: func(c *Config) any { return &c.Embed.BatchSize }},
	{Name: "embed.batch_max_wait", Flag: "embed-batch-max-wait", Env: "FACESTREAM_EMBED_BATCH_MAX_WAIT", Uses: embedders, check: nonNegativeDuration, Help: "how long a partial batch waits for more crops; 0 runs at once", field: func(c *Config) any { return &c.Embed.BatchMaxWait }},
	{Name: "http.addr", Flag: "http-addr", Env: "FACESTREAM_HTTP_ADDR", Uses: httpServer, check: listenAddr(false), Help: "address the HTTP API listens on", field: func(c *Config) any { return &c.HTTP.Addr }},
	{Name: "http.cors_origins", Flag: "cors-origins", Env: "FACESTREAM_CORS_ORIGINS", Uses: httpServer, Help: "comma-separated browser origins allowed to call the HTTP API (CORS), e.g. https://app.example.com; * for any; empty for none", field: func(c *Config) any { return &c.HTTP.CORSOrigins }},
	{Name: "http.rate_limit", Flag: "rate-limit", Env: "FACESTREAM_RATE_LIMIT", Uses: httpServer, check: between(1, 1_000_000), Help: "requests per minute allowed to an API key that has no limit of its own", field: func(c *Config) any { return &c.HTTP.RateLimit }},
	{Name: "http.analyze_timeout", Flag: "analyze-timeout", Env: "FACESTREAM_ANALYZE_TIMEOUT", Uses: httpServer, check: positiveDuration, Help: "how long a synchronous analysis (POST /v1/analyze, compare, batch, …) waits for its result before answering 504", field: func(c *Config) any { return &c.HTTP.AnalyzeTimeout }},
	{Name: "http.max_body_bytes", Flag: "max-body-bytes", Env: "FACESTREAM_MAX_BODY_BYTES", Uses: httpServer, check: sizeBetween(1<<10, 1<<30), Help: "largest HTTP request body (413 above it); one image is still bounded by max-image-bytes", field: func(c *Config) any { return &c.HTTP.MaxBodyBytes }},
	{Name: "metrics.addr", Flag: "metrics-addr", Env: "FACESTREAM_METRICS_ADDR", Uses: services, check: listenAddr(true), Help: "address serving /metrics, /healthz and /readyz; empty disables it", field: func(c *Config) any { return &c.Metrics.Addr }},
	{Name: "log.level", Flag: "log-level", Env: "FACESTREAM_LOG_LEVEL", Uses: everyone, check: oneOf("debug", "info", "warn", "error"), Help: "least severe log level written: debug, info, warn or error", field: func(c *Config) any { return &c.Log.Level }},
	{Name: "log.format", Flag: "log-format", Env: "FACESTREAM_LOG_FORMAT", Uses: everyone, check: oneOf(LogText, LogJSON), Help: "log format: text or json", field: func(c *Config) any { return &c.Log.Format }},
	{Name: "limits.max_image_bytes", Flag: "max-image-bytes", Env: "FACESTREAM_MAX_IMAGE_BYTES", Uses: imageEdge, check: sizeBetween(1<<10, 1<<30), Help: "largest accepted image file", field: func(c *Config) any { return &c.Limits.MaxImageBytes }},
	{Name: "limits.max_pixels", Flag: "max-pixels", Env: "FACESTREAM_MAX_PIXELS", Uses: imageEdge, check: between(1, 1<<30), Help: "largest accepted image area, width times height", field: func(c *Config) any { return &c.Limits.MaxPixels }},
	{Name: "limits.inline_payload_max", Flag: "inline-payload-max", Env: "FACESTREAM_INLINE_PAYLOAD_MAX", Uses: imageEdge, check: sizeBetween(1<<10, 64<<20), Help: "largest image carried inside a NATS message; larger ones go to the object store (keep it below the server's max_payload)", field: func(c *Config) any { return &c.Limits.InlinePayloadMax }},
	{Name: "cache.entries", Flag: "cache-entries", Env: "FACESTREAM_CACHE_ENTRIES", Uses: []Binary{Ingest, Aggregate, Run}, check: between(1, 1<<24), Help: "size of the in-process result cache (LRU entries) in front of the shared cache bucket", field: func(c *Config) any { return &c.Limits.CacheEntries }},
	{Name: "retention.image_ttl", Flag: "image-ttl", Env: "FACESTREAM_IMAGE_TTL", Uses: streamDefs, check: positiveDuration, Help: "lifetime of an image payload in the object store bucket", field: func(c *Config) any { return &c.Retention.ImageTTL }},
	{Name: "blob.key", Flag: "blob-key", Env: "FACESTREAM_BLOB_KEY", Uses: streamDefs, Secret: true, Help: "current key sealing objects in the object store (AES-256-GCM), id:key with 32 bytes in base64 or hex; empty (and no key file) leaves them in the clear", field: func(c *Config) any { return &c.Blob.Key }},
	{Name: "blob.key_file", Flag: "blob-key-file", Env: "FACESTREAM_BLOB_KEY_FILE", Uses: streamDefs, Help: "file holding the current object-store key (id:key), instead of blob.key", field: func(c *Config) any { return &c.Blob.KeyFile }},
	{Name: "blob.previous_keys", Flag: "blob-previous-keys", Env: "FACESTREAM_BLOB_PREVIOUS_KEYS", Uses: streamDefs, Secret: true, Help: "comma-separated earlier keys (id:key) still accepted for reading sealed objects after a rotation", field: func(c *Config) any { return &c.Blob.PreviousKeys }},
	{Name: "retention.results_max_age", Flag: "results-max-age", Env: "FACESTREAM_RESULTS_MAX_AGE", Uses: streamDefs, check: positiveDuration, Help: "how long result events stay in the results stream", field: func(c *Config) any { return &c.Retention.ResultsMaxAge }},
	{Name: "nats.replicas", Flag: "nats-replicas", Env: "FACESTREAM_NATS_REPLICAS", Uses: streamDefs, check: between(1, 5), Help: "copies JetStream keeps of each stream and bucket: 1 on a single server, 3 on a three-node cluster (every process that applies the definitions must agree)", field: func(c *Config) any { return &c.NATS.Replicas }},
	{Name: "nats.work_max_per_stage", Flag: "work-max-per-stage", Env: "FACESTREAM_WORK_MAX_PER_STAGE", Uses: streamDefs, check: between(100, 100_000_000), Help: "most messages waiting for each stage in the work stream; a full stage refuses new ones (never deletes work), and the HTTP edge stops admitting images well before that (every process that applies the definitions must agree)", field: func(c *Config) any { return &c.NATS.WorkMaxPerStage }},
	{Name: "search.ef_search", Flag: "search-ef-search", Env: "FACESTREAM_SEARCH_EF_SEARCH", Uses: []Binary{API, Aggregate, Run}, check: between(1, 1000), Help: "pgvector's hnsw.ef_search for the API's searches and identifications and the aggregate stage's matching against enrolled subjects (at least k is used): higher finds more of the true nearest faces and takes longer; 100 gives recall@10 0.95 up to about 50,000 faces per model, a million needs about 400 with an m = 24, ef_construction = 100 index (docs/benchmarks.md)", field: func(c *Config) any { return &c.Search.EfSearch }},
	{Name: "http.backlog_high_water", Flag: "backlog-high-water", Env: "FACESTREAM_BACKLOG_HIGH_WATER", Uses: httpServer, check: between(1, 90), Help: "the HTTP edge refuses new images with 503 and Retry-After while the work stream holds more than this percentage of nats.work_max_per_stage (all stages together; the rest is room for the stages' own hand-offs)", field: func(c *Config) any { return &c.HTTP.BacklogHighWater }},
	{Name: "nats.listen", Flag: "nats-listen", Env: "FACESTREAM_NATS_LISTEN", Uses: allInOne, check: listenAddr(false), Help: "address the embedded NATS server listens on, for other clients (facestream submit, extra stage replicas)", field: func(c *Config) any { return &c.NATS.Listen }},
	{Name: "data.dir", Flag: "data-dir", Env: "FACESTREAM_DATA_DIR", Uses: allInOne, check: nonEmpty, Help: "folder for local state (the embedded NATS server's JetStream store)", field: func(c *Config) any { return &c.Data.Dir }},
}

// Settings returns a copy of the whole table, in table order.
func Settings() []Setting { return slices.Clone(settings) }

// For returns the settings binary b reads, in table order.
func For(b Binary) []Setting {
	var out []Setting
	for _, s := range settings {
		if s.UsedBy(b) {
			out = append(out, s)
		}
	}
	return out
}

// EnvVars returns the environment variables binary b reads, in table order.
func EnvVars(b Binary) []string {
	var out []string
	for _, s := range For(b) {
		out = append(out, s.Env)
	}
	return out
}

// UsedBy says whether binary b reads the setting.
func (s Setting) UsedBy(b Binary) bool { return slices.Contains(s.Uses, b) }

// RequiredBy says whether binary b refuses to start without a value.
func (s Setting) RequiredBy(b Binary) bool { return slices.Contains(s.Requires, b) }

// Default returns the default value as it would be written in the
// environment ("" when there is none).
func (s Setting) Default() string {
	d := Default()
	return s.format(&d)
}

// Value returns the setting's value in c, formatted as in the environment.
// It reveals secrets: use it to pass values on, never to print them.
func (s Setting) Value(c Config) string { return s.format(&c) }

// format renders the field as text that set parses back.
func (s Setting) format(c *Config) string {
	switch p := s.field(c).(type) {
	case *string:
		return *p
	case *Secret:
		return p.Value()
	case *int:
		return strconv.Itoa(*p)
	case *bool:
		return strconv.FormatBool(*p)
	case *time.Duration:
		return p.String()
	case *ByteSize:
		return p.String()
	default:
		panic(fmt.Sprintf("config: setting %s has a field of unsupported type %T", s.Name, p))
	}
}

// display is format with secrets and URL passwords redacted.
func (s Setting) display(c *Config) string {
	v := s.format(c)
	if s.Secret {
		return Redact(v)
	}
	return redactURLs(v)
}

// set parses text into the field.
func (s Setting) set(c *Config, text string) error {
	switch p := s.field(c).(type) {
	case *string:
		*p = text
	case *Secret:
		*p = Secret(text)
	case *int:
		n, err := strconv.Atoi(text)
		if err != nil {
			return fmt.Errorf("want a whole number, got %q", text)
		}
		*p = n
	case *bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", text)
		}
		*p = b
	case *time.Duration:
		d, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("want a duration such as 500ms, 30s or 2h, got %q", text)
		}
		*p = d
	case *ByteSize:
		n, err := ParseByteSize(text)
		if err != nil {
			return err
		}
		*p = n
	default:
		panic(fmt.Sprintf("config: setting %s has a field of unsupported type %T", s.Name, p))
	}
	return nil
}

// kind is the type name shown in --help.
func (s Setting) kind() string {
	var c Config
	switch s.field(&c).(type) {
	case *int:
		return "int"
	case *bool:
		return "bool"
	case *time.Duration:
		return "duration"
	case *ByteSize:
		return "size"
	default:
		return "string"
	}
}

func (s Setting) errorf(format string, args ...any) error {
	return fmt.Errorf("--%s (%s): "+format, append([]any{s.Flag, s.Env}, args...)...)
}
