package nats

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Names of the declared resources.
const (
	StreamWork    = "FACESTREAM_WORK"
	StreamResults = "FACESTREAM_RESULTS"
	StreamDLQ     = "FACESTREAM_DLQ"

	// The durable pull consumers, one per stage, on StreamWork. Each is
	// named after its stage.
	ConsumerIngest    = "ingest"
	ConsumerDetect    = "detect"
	ConsumerEmbed     = "embed"
	ConsumerAttrs     = "attrs"
	ConsumerAggregate = "aggregate"

	// BucketImages is the object store of payloads too large for a message.
	BucketImages = "facestream-images"
	// BucketCache is the key-value bucket of cached results.
	BucketCache = "facestream-cache"
)

//go:embed streams/*.json consumers/*.json objectstores/*.json keyvalues/*.json
var definitionFiles embed.FS

// Duration is a time.Duration written in JSON as a Go duration string
// ("30s", "10m", "24h").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Stream declares a JetStream stream. The JSON names follow the NATS
// server's; durations are Go duration strings.
type Stream struct {
	Name        string                    `json:"name"`
	Description string                    `json:"description,omitempty"`
	Subjects    []string                  `json:"subjects"`
	Retention   jetstream.RetentionPolicy `json:"retention"`
	Storage     jetstream.StorageType     `json:"storage"`
	Replicas    int                       `json:"replicas,omitempty"`
	MaxAge      Duration                  `json:"max_age,omitempty"`
	MaxBytes    int64                     `json:"max_bytes,omitempty"`
	MaxMsgs     int64                     `json:"max_msgs,omitempty"`
	// MaxMsgsPerSubject bounds the messages of each subject; with
	// DiscardNewPerSubject a full subject refuses new ones (instead of
	// deleting its oldest).
	MaxMsgsPerSubject    int64 `json:"max_msgs_per_subject,omitempty"`
	DiscardNewPerSubject bool  `json:"discard_new_per_subject,omitempty"`
	// MaxMsgSize is the largest message the stream accepts; the server's
	// max_payload caps it in any case.
	MaxMsgSize int32 `json:"max_msg_size,omitempty"`
	// DuplicateWindow is how long the stream remembers Nats-Msg-Id values.
	DuplicateWindow Duration                `json:"duplicate_window,omitempty"`
	Discard         jetstream.DiscardPolicy `json:"discard"`
	// Notes explain the choices; they are not sent to the server.
	Notes []string `json:"notes,omitempty"`
}

// Config maps the declaration onto nats.go's StreamConfig.
func (s Stream) Config() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        s.Name,
		Description: s.Description,
		Subjects:    slices.Clone(s.Subjects),
		Retention:   s.Retention,
		Storage:     s.Storage,
		Replicas:    max(s.Replicas, 1),
		MaxAge:      time.Duration(s.MaxAge),
		MaxBytes:    orUnlimited(s.MaxBytes),
		MaxMsgs:     orUnlimited(s.MaxMsgs),
		MaxMsgSize:  int32(orUnlimited(int64(s.MaxMsgSize))),
		Duplicates:  time.Duration(s.DuplicateWindow),
		Discard:     s.Discard,

		MaxMsgsPerSubject:    orUnlimited(s.MaxMsgsPerSubject),
		DiscardNewPerSubject: s.DiscardNewPerSubject,
	}
}

// Consumer declares a durable pull consumer.
type Consumer struct {
	// Stream is the stream the consumer reads.
	Stream string `json:"stream"`
	// Name is the durable name.
	Name          string                  `json:"name"`
	Description   string                  `json:"description,omitempty"`
	FilterSubject string                  `json:"filter_subject"`
	DeliverPolicy jetstream.DeliverPolicy `json:"deliver_policy"`
	AckPolicy     jetstream.AckPolicy     `json:"ack_policy"`
	// AckWait is how long the server waits for an ack (or an in-progress
	// heartbeat) before redelivering. With BackOff it must equal BackOff[0].
	AckWait Duration `json:"ack_wait"`
	// BackOff is the redelivery delay after each unanswered delivery.
	BackOff []Duration `json:"backoff,omitempty"`
	// MaxDeliver bounds deliveries; the runner dead-letters the last.
	MaxDeliver int `json:"max_deliver"`
	// MaxAckPending bounds delivered-but-unsettled messages across all
	// replicas: the stage's backpressure.
	MaxAckPending int      `json:"max_ack_pending"`
	MaxWaiting    int      `json:"max_waiting,omitempty"`
	Notes         []string `json:"notes,omitempty"`
}

// Config maps the declaration onto nats.go's ConsumerConfig.
func (c Consumer) Config() jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       c.Name,
		Description:   c.Description,
		FilterSubject: c.FilterSubject,
		DeliverPolicy: c.DeliverPolicy,
		AckPolicy:     c.AckPolicy,
		AckWait:       time.Duration(c.AckWait),
		MaxDeliver:    c.MaxDeliver,
		MaxAckPending: c.MaxAckPending,
		MaxWaiting:    c.MaxWaiting,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	}
	for _, b := range c.BackOff {
		cfg.BackOff = append(cfg.BackOff, time.Duration(b))
	}
	return cfg
}

// ObjectStore declares an object store bucket.
type ObjectStore struct {
	Bucket      string                `json:"bucket"`
	Description string                `json:"description,omitempty"`
	TTL         Duration              `json:"ttl,omitempty"`
	Storage     jetstream.StorageType `json:"storage"`
	Replicas    int                   `json:"replicas,omitempty"`
	MaxBytes    int64                 `json:"max_bytes,omitempty"`
	Notes       []string              `json:"notes,omitempty"`
}

// Config maps the declaration onto nats.go's ObjectStoreConfig.
func (o ObjectStore) Config() jetstream.ObjectStoreConfig {
	return jetstream.ObjectStoreConfig{
		Bucket:      o.Bucket,
		Description: o.Description,
		TTL:         time.Duration(o.TTL),
		Storage:     o.Storage,
		Replicas:    max(o.Replicas, 1),
		MaxBytes:    orUnlimited(o.MaxBytes),
	}
}

// KeyValue declares a key-value bucket.
type KeyValue struct {
	Bucket       string                `json:"bucket"`
	Description  string                `json:"description,omitempty"`
	TTL          Duration              `json:"ttl,omitempty"`
	History      uint8                 `json:"history,omitempty"`
	Storage      jetstream.StorageType `json:"storage"`
	Replicas     int                   `json:"replicas,omitempty"`
	MaxBytes     int64                 `json:"max_bytes,omitempty"`
	MaxValueSize int32                 `json:"max_value_size,omitempty"`
	Notes        []string              `json:"notes,omitempty"`
}

// Config maps the declaration onto nats.go's KeyValueConfig.
func (k KeyValue) Config() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       k.Bucket,
		Description:  k.Description,
		TTL:          time.Duration(k.TTL),
		History:      max(k.History, 1),
		Storage:      k.Storage,
		Replicas:     max(k.Replicas, 1),
		MaxBytes:     orUnlimited(k.MaxBytes),
		MaxValueSize: int32(orUnlimited(int64(k.MaxValueSize))),
	}
}

// Definitions are every JetStream resource facestream needs.
type Definitions struct {
	Streams      []Stream
	Consumers    []Consumer
	ObjectStores []ObjectStore
	KeyValues    []KeyValue
}

// Defaults returns the definitions embedded in the binary (the JSON files
// of this package), validated.
func Defaults() (Definitions, error) {
	var d Definitions
	if err := load(definitionFiles, "streams", &d.Streams); err != nil {
		return Definitions{}, err
	}
	if err := load(definitionFiles, "consumers", &d.Consumers); err != nil {
		return Definitions{}, err
	}
	if err := load(definitionFiles, "objectstores", &d.ObjectStores); err != nil {
		return Definitions{}, err
	}
	if err := load(definitionFiles, "keyvalues", &d.KeyValues); err != nil {
		return Definitions{}, err
	}
	if err := d.Validate(); err != nil {
		return Definitions{}, err
	}
	return d, nil
}

// load decodes every JSON file of dir, in name order, strictly (unknown
// fields are errors).
func load[T any](fsys fs.FS, dir string, out *[]T) error {
	names, err := fs.Glob(fsys, dir+"/*.json")
	if err != nil {
		return fmt.Errorf("load %s: %w", dir, err)
	}
	slices.Sort(names)
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return fmt.Errorf("load %s: %w", name, err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var v T
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("load %s: %w", path.Base(name), err)
		}
		*out = append(*out, v)
	}
	return nil
}

// Validate checks the definitions against each other: unique names, stream
// subjects that do not overlap, work-queue streams that never discard work
// (no max age; discard new when bounded), every consumer on an existing
// stream with a filter inside it (and, on a work-queue stream, not
// overlapping another consumer's), BackOff consistent with AckWait and
// MaxDeliver.
func (d Definitions) Validate() error {
	streams := map[string]Stream{}
	for _, s := range d.Streams {
		if s.Name == "" || strings.ContainsAny(s.Name, ".*> \t") {
			return fmt.Errorf("validate definitions: invalid stream name %q", s.Name)
		}
		if _, dup := streams[s.Name]; dup {
			return fmt.Errorf("validate definitions: stream %s declared twice", s.Name)
		}
		if len(s.Subjects) == 0 {
			return fmt.Errorf("validate definitions: stream %s has no subjects", s.Name)
		}
		for _, other := range streams {
			for _, a := range s.Subjects {
				for _, b := range other.Subjects {
					if subjectsOverlap(a, b) {
						return fmt.Errorf("validate definitions: subject %s of %s overlaps %s of %s", a, s.Name, b, other.Name)
					}
				}
			}
		}
		if err := validateWorkQueue(s); err != nil {
			return fmt.Errorf("validate definitions: %w", err)
		}
		if s.MaxAge > 0 && s.DuplicateWindow > s.MaxAge {
			return fmt.Errorf("validate definitions: stream %s: duplicate window %v exceeds max age %v",
				s.Name, time.Duration(s.DuplicateWindow), time.Duration(s.MaxAge))
		}
		streams[s.Name] = s
	}

	consumers := map[string]Consumer{}
	for _, c := range d.Consumers {
		key := c.Stream + " > " + c.Name
		s, ok := streams[c.Stream]
		switch {
		case c.Name == "" || strings.ContainsAny(c.Name, ".*> \t"):
			return fmt.Errorf("validate definitions: invalid consumer name %q", c.Name)
		case !ok:
			return fmt.Errorf("validate definitions: consumer %s: no stream %s", key, c.Stream)
		case c.FilterSubject == "":
			return fmt.Errorf("validate definitions: consumer %s: no filter subject", key)
		case !slices.ContainsFunc(s.Subjects, func(sub string) bool { return subjectIsSubset(c.FilterSubject, sub) }):
			return fmt.Errorf("validate definitions: consumer %s: filter %s is not inside the stream's subjects %v", key, c.FilterSubject, s.Subjects)
		case c.AckPolicy != jetstream.AckExplicitPolicy:
			return fmt.Errorf("validate definitions: consumer %s: ack policy must be explicit", key)
		case c.AckWait <= 0:
			return fmt.Errorf("validate definitions: consumer %s: ack wait must be set", key)
		case len(c.BackOff) > 0 && c.BackOff[0] != c.AckWait:
			return fmt.Errorf("validate definitions: consumer %s: backoff[0] %v must equal ack wait %v (the server replaces ack wait with it)",
				key, time.Duration(c.BackOff[0]), time.Duration(c.AckWait))
		case c.MaxDeliver < 1 || len(c.BackOff) > c.MaxDeliver:
			return fmt.Errorf("validate definitions: consumer %s: max deliver %d must be at least 1 and at least len(backoff) %d",
				key, c.MaxDeliver, len(c.BackOff))
		case c.MaxAckPending < 1:
			return fmt.Errorf("validate definitions: consumer %s: max ack pending must be set", key)
		}
		if _, dup := consumers[key]; dup {
			return fmt.Errorf("validate definitions: consumer %s declared twice", key)
		}
		if s.Retention == jetstream.WorkQueuePolicy {
			for _, other := range consumers {
				if other.Stream == c.Stream && subjectsOverlap(other.FilterSubject, c.FilterSubject) {
					return fmt.Errorf("validate definitions: work-queue consumers %s and %s overlap", other.Name, c.Name)
				}
			}
		}
		consumers[key] = c
	}

	buckets := map[string]bool{}
	for _, name := range bucketNames(d) {
		if name == "" || strings.ContainsAny(name, ".*> \t") {
			return fmt.Errorf("validate definitions: invalid bucket name %q", name)
		}
		if buckets[name] {
			return fmt.Errorf("validate definitions: bucket %s declared twice", name)
		}
		buckets[name] = true
	}
	return nil
}

// validateWorkQueue checks that a work-queue stream never loses work and
// that its bound cannot deadlock the stages that hand work on through it:
//
//   - no max age: JetStream deletes aged messages without a trace;
//   - bounded per subject only, with discard new per subject: a full
//     subject refuses the publish instead of deleting its oldest message.
//     Each stage publishes into its own subject and the last one out of the
//     stream, so room always comes back in every subject; a global
//     max_msgs or max_bytes would let one subject (new submissions) take
//     the room every stage needs to hand an image on, and stop them all.
func validateWorkQueue(s Stream) error {
	if s.Retention != jetstream.WorkQueuePolicy {
		return nil
	}
	switch {
	case s.MaxAge > 0:
		return fmt.Errorf("stream %s: a work-queue stream must not have a max age (%v): JetStream deletes aged work without a trace",
			s.Name, time.Duration(s.MaxAge))
	case s.MaxMsgs > 0 || s.MaxBytes > 0:
		return fmt.Errorf("stream %s: bound a work-queue stream per subject (max_msgs_per_subject), not with max_msgs or max_bytes: a stream-wide limit lets new submissions take the room the stages need to hand work on", s.Name)
	case s.MaxMsgsPerSubject > 0 && (s.Discard != jetstream.DiscardNew || !s.DiscardNewPerSubject):
		return fmt.Errorf("stream %s: a bounded work-queue stream must discard new per subject (refuse publishes when full), not delete stored work", s.Name)
	}
	return nil
}

func bucketNames(d Definitions) []string {
	var names []string
	for _, o := range d.ObjectStores {
		names = append(names, o.Bucket)
	}
	for _, k := range d.KeyValues {
		names = append(names, k.Bucket)
	}
	return names
}

// subjectIsSubset reports whether every subject matched by filter is also
// matched by subject (both may hold the * and > wildcards).
func subjectIsSubset(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, st := range s {
		if st == ">" {
			return len(f) > i
		}
		if i >= len(f) {
			return false
		}
		switch {
		case f[i] == ">":
			return false
		case st == "*" || st == f[i]:
		default:
			return false
		}
	}
	return len(f) == len(s)
}

// subjectsOverlap reports whether some subject is matched by both a and b.
func subjectsOverlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		switch {
		case at[i] == ">" || bt[i] == ">":
			return true
		case at[i] == "*" || bt[i] == "*" || at[i] == bt[i]:
		default:
			return false
		}
	}
	return len(at) == len(bt)
}

// orUnlimited maps the "unset" zero to the server's "unlimited" -1.
func orUnlimited(v int64) int64 {
	if v == 0 {
		return -1
	}
	return v
}
