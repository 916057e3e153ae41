package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Kind names a kind of JetStream resource.
type Kind string

// Resource kinds.
const (
	KindStream      Kind = "stream"
	KindConsumer    Kind = "consumer"
	KindObjectStore Kind = "object_store"
	KindKeyValue    Kind = "key_value"
)

// Action is what Apply did to a resource.
type Action string

// Actions.
const (
	Created   Action = "created"
	Updated   Action = "updated"
	Unchanged Action = "unchanged"
)

// Change is what Apply did to one resource.
type Change struct {
	Kind Kind
	// Name is the stream, bucket, or "stream > consumer".
	Name   string
	Action Action
}

// Option adjusts the definitions before Apply, for an environment (tests,
// a cluster, the all-in-one server).
type Option func(*options)

type options struct {
	defs       *Definitions
	storage    *jetstream.StorageType
	replicas   int
	maxAge     map[string]time.Duration
	perSubject map[string]int64
	dupWindow  time.Duration
	maxMsgSize int32
	ttl        map[string]time.Duration
	logger     *slog.Logger
}

// WithDefinitions applies d instead of the embedded definitions.
func WithDefinitions(d Definitions) Option {
	return func(o *options) { o.defs = &d }
}

// WithStorage stores every stream and bucket with st.
func WithStorage(st jetstream.StorageType) Option {
	return func(o *options) { o.storage = &st }
}

// WithMemoryStorage keeps every stream and bucket in memory (tests).
func WithMemoryStorage() Option { return WithStorage(jetstream.MemoryStorage) }

// WithReplicas replicates every stream and bucket n times (a cluster);
// consumers follow their stream.
func WithReplicas(n int) Option {
	return func(o *options) { o.replicas = n }
}

// WithMaxAge sets the max age of one stream. A duplicate window longer than
// the new max age is shortened to it.
func WithMaxAge(stream string, d time.Duration) Option {
	return func(o *options) {
		if o.maxAge == nil {
			o.maxAge = map[string]time.Duration{}
		}
		o.maxAge[stream] = d
	}
}

// WithMaxMsgsPerSubject bounds each subject of one stream to n messages
// (zero keeps the declared value). The work stream refuses a publish into a
// full subject; nothing stored is deleted.
func WithMaxMsgsPerSubject(stream string, n int64) Option {
	return func(o *options) {
		if o.perSubject == nil {
			o.perSubject = map[string]int64{}
		}
		o.perSubject[stream] = n
	}
}

// WithDuplicateWindow sets the duplicate window of every stream.
func WithDuplicateWindow(d time.Duration) Option {
	return func(o *options) { o.dupWindow = d }
}

// WithMaxMsgSize sets the max message size of every stream, e.g. to the
// server's max_payload.
func WithMaxMsgSize(n int32) Option {
	return func(o *options) { o.maxMsgSize = n }
}

// WithTTL sets the TTL of an object store or key-value bucket.
func WithTTL(bucket string, d time.Duration) Option {
	return func(o *options) {
		if o.ttl == nil {
			o.ttl = map[string]time.Duration{}
		}
		o.ttl[bucket] = d
	}
}

// WithLogger logs each change (discarded otherwise).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// Apply creates what is missing and updates what differs, in order: streams,
// consumers, object stores, key-value buckets. It is idempotent: applying the
// same definitions again changes nothing and reports every resource
// Unchanged. A setting the server cannot change in place (a stream's
// retention or storage type) is an error; nothing is ever deleted.
//
// Apply returns what it did to each resource, also when it stops at an error.
func Apply(ctx context.Context, js jetstream.JetStream, opts ...Option) ([]Change, error) {
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	logger := o.logger.With("component", "nats.apply")
	var d Definitions
	if o.defs != nil {
		d = *o.defs
	} else {
		var err error
		if d, err = Defaults(); err != nil {
			return nil, fmt.Errorf("apply: %w", err)
		}
	}
	d = o.adjust(d)
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}

	var changes []Change
	record := func(k Kind, name string, a Action) {
		changes = append(changes, Change{Kind: k, Name: name, Action: a})
		if a != Unchanged {
			logger.InfoContext(ctx, "jetstream resource "+string(a), "kind", k, "name", name)
		}
	}
	for _, s := range d.Streams {
		a, err := applyStream(ctx, js, s.Config())
		if err != nil {
			return changes, fmt.Errorf("apply stream %s: %w", s.Name, err)
		}
		record(KindStream, s.Name, a)
	}
	for _, c := range d.Consumers {
		a, err := applyConsumer(ctx, js, c.Stream, c.Config())
		if err != nil {
			return changes, fmt.Errorf("apply consumer %s > %s: %w", c.Stream, c.Name, err)
		}
		record(KindConsumer, c.Stream+" > "+c.Name, a)
	}
	for _, b := range d.ObjectStores {
		a, err := applyBucket(ctx, js, "OBJ_"+b.Bucket, func() error {
			_, err := js.CreateOrUpdateObjectStore(ctx, b.Config())
			return err
		})
		if err != nil {
			return changes, fmt.Errorf("apply object store %s: %w", b.Bucket, err)
		}
		record(KindObjectStore, b.Bucket, a)
	}
	for _, b := range d.KeyValues {
		a, err := applyBucket(ctx, js, "KV_"+b.Bucket, func() error {
			_, err := js.CreateOrUpdateKeyValue(ctx, b.Config())
			return err
		})
		if err != nil {
			return changes, fmt.Errorf("apply key-value bucket %s: %w", b.Bucket, err)
		}
		record(KindKeyValue, b.Bucket, a)
	}
	return changes, nil
}

// adjust applies the options to a copy of d.
func (o options) adjust(d Definitions) Definitions {
	out := Definitions{
		Streams:      append([]Stream(nil), d.Streams...),
		Consumers:    append([]Consumer(nil), d.Consumers...),
		ObjectStores: append([]ObjectStore(nil), d.ObjectStores...),
		KeyValues:    append([]KeyValue(nil), d.KeyValues...),
	}
	for i := range out.Streams {
		s := &out.Streams[i]
		if o.storage != nil {
			s.Storage = *o.storage
		}
		if o.replicas > 0 {
			s.Replicas = o.replicas
		}
		if o.dupWindow > 0 {
			s.DuplicateWindow = Duration(o.dupWindow)
		}
		if age, ok := o.maxAge[s.Name]; ok {
			s.MaxAge = Duration(age)
		}
		if n := o.perSubject[s.Name]; n > 0 {
			s.MaxMsgsPerSubject = n
		}
		if s.MaxAge > 0 && s.DuplicateWindow > s.MaxAge {
			s.DuplicateWindow = s.MaxAge
		}
		if o.maxMsgSize > 0 {
			s.MaxMsgSize = o.maxMsgSize
		}
	}
	for i := range out.ObjectStores {
		b := &out.ObjectStores[i]
		if o.storage != nil {
			b.Storage = *o.storage
		}
		if o.replicas > 0 {
			b.Replicas = o.replicas
		}
		if ttl, ok := o.ttl[b.Bucket]; ok {
			b.TTL = Duration(ttl)
		}
	}
	for i := range out.KeyValues {
		b := &out.KeyValues[i]
		if o.storage != nil {
			b.Storage = *o.storage
		}
		if o.replicas > 0 {
			b.Replicas = o.replicas
		}
		if ttl, ok := o.ttl[b.Bucket]; ok {
			b.TTL = Duration(ttl)
		}
	}
	return out
}

// applyStream creates or updates a stream. It decides Unchanged by comparing
// the server's configuration before and after the update, which sees the
// server's own defaults on both sides.
func applyStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (Action, error) {
	before, err := streamConfig(ctx, js, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			return "", err
		}
		return Created, nil
	}
	if err != nil {
		return "", err
	}
	s, err := js.UpdateStream(ctx, cfg)
	if err != nil {
		return "", err
	}
	return changed(before, &s.CachedInfo().Config), nil
}

func applyConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (Action, error) {
	c, err := js.Consumer(ctx, stream, cfg.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		if _, err := js.CreateConsumer(ctx, stream, cfg); err != nil {
			return "", err
		}
		return Created, nil
	}
	if err != nil {
		return "", err
	}
	before := c.CachedInfo().Config
	c, err = js.UpdateConsumer(ctx, stream, cfg)
	if err != nil {
		return "", err
	}
	return changed(&before, &c.CachedInfo().Config), nil
}

// applyBucket runs createOrUpdate for a bucket backed by stream.
func applyBucket(ctx context.Context, js jetstream.JetStream, stream string, createOrUpdate func() error) (Action, error) {
	before, err := streamConfig(ctx, js, stream)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return "", err
	}
	if err := createOrUpdate(); err != nil {
		return "", err
	}
	if before == nil {
		return Created, nil
	}
	after, err := streamConfig(ctx, js, stream)
	if err != nil {
		return "", err
	}
	return changed(before, after), nil
}

func streamConfig(ctx context.Context, js jetstream.JetStream, name string) (*jetstream.StreamConfig, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return &s.CachedInfo().Config, nil
}

func changed[T any](before, after *T) Action {
	if reflect.DeepEqual(before, after) {
		return Unchanged
	}
	return Updated
}
