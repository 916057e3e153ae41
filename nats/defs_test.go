package nats

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/pkg/events"
)

func TestDefaultsLoadAndValidate(t *testing.T) {
	d, err := Defaults()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Streams) != 3 || len(d.Consumers) != 6 || len(d.ObjectStores) != 1 || len(d.KeyValues) != 1 {
		t.Errorf("definitions: %d streams, %d consumers, %d object stores, %d key-value buckets",
			len(d.Streams), len(d.Consumers), len(d.ObjectStores), len(d.KeyValues))
	}
	for _, s := range d.Streams {
		if len(s.Notes) == 0 || s.Description == "" {
			t.Errorf("stream %s is not documented", s.Name)
		}
	}
	for _, c := range d.Consumers {
		if len(c.Notes) == 0 || c.Description == "" {
			t.Errorf("consumer %s is not documented", c.Name)
		}
	}
	work := d.Streams[slicesIndex(d.Streams, StreamWork)]
	if work.Retention != jetstream.WorkQueuePolicy || time.Duration(work.DuplicateWindow) < 10*time.Minute {
		t.Errorf("work stream: %+v", work)
	}
	cfg := work.Config()
	// Bounded per subject, refusing new work when full, never ageing work out.
	if cfg.MaxMsgsPerSubject <= 0 || !cfg.DiscardNewPerSubject || cfg.Discard != jetstream.DiscardNew ||
		cfg.MaxMsgs != -1 || cfg.MaxBytes != -1 || cfg.MaxAge != 0 || cfg.MaxMsgSize != 8<<20 || cfg.Duplicates != 10*time.Minute {
		t.Errorf("work stream config: %+v", cfg)
	}
}

// consumer is the named consumer of d.
func consumer(d *Definitions, name string) *Consumer {
	return &d.Consumers[slices.IndexFunc(d.Consumers, func(c Consumer) bool { return c.Name == name })]
}

func slicesIndex(ss []Stream, name string) int {
	for i, s := range ss {
		if s.Name == name {
			return i
		}
	}
	return -1
}

func TestValidateRejectsBadDefinitions(t *testing.T) {
	tests := []struct {
		name string
		edit func(d *Definitions)
		want string
	}{
		{"filter outside stream", func(d *Definitions) { d.Consumers[0].FilterSubject = "facestream.image.analyzed" }, "not inside"},
		{"unknown stream", func(d *Definitions) { d.Consumers[0].Stream = "NOPE" }, "no stream"},
		{"overlapping streams", func(d *Definitions) {
			d.Streams[0].Subjects = append(d.Streams[0].Subjects, "facestream.>")
		}, "overlaps"},
		{"overlapping work-queue consumers", func(d *Definitions) {
			d.Consumers[1].FilterSubject = d.Consumers[0].FilterSubject
		}, "overlap"},
		{"backoff without ack wait", func(d *Definitions) { consumer(d, "detect").AckWait = Duration(time.Second) }, "must equal ack wait"},
		{"backoff longer than max deliver", func(d *Definitions) { consumer(d, "detect").MaxDeliver = 2 }, "max deliver"},
		{"no max ack pending", func(d *Definitions) { d.Consumers[0].MaxAckPending = 0 }, "max ack pending"},
		{"duplicate window beyond max age", func(d *Definitions) { d.Streams[0].MaxAge = Duration(time.Minute) }, "duplicate window"},
		{"work queue with a max age", func(d *Definitions) {
			d.Streams[slicesIndex(d.Streams, StreamWork)].MaxAge = Duration(time.Hour)
		}, "must not have a max age"},
		{"bounded work queue discarding old", func(d *Definitions) {
			d.Streams[slicesIndex(d.Streams, StreamWork)].Discard = jetstream.DiscardOld
		}, "must discard new per subject"},
		{"bounded work queue deleting a subject's oldest", func(d *Definitions) {
			d.Streams[slicesIndex(d.Streams, StreamWork)].DiscardNewPerSubject = false
		}, "must discard new per subject"},
		{"work queue bounded stream-wide", func(d *Definitions) {
			d.Streams[slicesIndex(d.Streams, StreamWork)].MaxMsgs = 10000
		}, "per subject"},
		{"work queue bounded in bytes", func(d *Definitions) {
			d.Streams[slicesIndex(d.Streams, StreamWork)].MaxBytes = 1 << 30
		}, "per subject"},
		{"duplicate bucket", func(d *Definitions) { d.KeyValues[0].Bucket = d.ObjectStores[0].Bucket }, "declared twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Defaults()
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(&d)
			err = d.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestSubjectMatching(t *testing.T) {
	subset := []struct {
		filter, subject string
		want            bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.*", true},
		{"a.b.c", "a.>", true},
		{"a", "a.>", false},
		{"a.*", "a.b", false},
		{"a.>", "a.*", false},
		{"a.*", "a.>", true},
		{"a.b", "a.b.c", false},
	}
	for _, tt := range subset {
		if got := subjectIsSubset(tt.filter, tt.subject); got != tt.want {
			t.Errorf("subjectIsSubset(%q, %q) = %v", tt.filter, tt.subject, got)
		}
	}
	overlap := []struct {
		a, b string
		want bool
	}{
		{"a.b", "a.b", true},
		{"a.*", "a.b", true},
		{"a.>", "a.b.c", true},
		{"a.>", "a", false},
		{"a.b", "a.c", false},
		{"*.b", "a.*", true},
		{"a.b", "a.b.c", false},
	}
	for _, tt := range overlap {
		if got := subjectsOverlap(tt.a, tt.b); got != tt.want {
			t.Errorf("subjectsOverlap(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	var d Duration
	if err := d.UnmarshalJSON([]byte(`"1h30m"`)); err != nil || time.Duration(d) != 90*time.Minute {
		t.Errorf("1h30m: %v, %v", time.Duration(d), err)
	}
	for _, bad := range []string{`90`, `"ninety"`} {
		if err := d.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	if b, _ := Duration(10 * time.Minute).MarshalJSON(); string(b) != `"10m0s"` {
		t.Errorf("marshal = %s", b)
	}
}

// TestDatabaseWritersRetryOnTheRunnersSchedule: aggregate and the recorder
// wait out PostgreSQL outages by NAK-ing with the runner's delays. A BackOff
// list would floor each delay at BackOff[i] − AckWait (the server measures a
// NAK'd message against its delivery's BackOff entry), so a 10 s outage once
// held three analyses back for two more minutes. Their deliveries must also
// outlast a few minutes of outage before anything is dead-lettered.
func TestDatabaseWritersRetryOnTheRunnersSchedule(t *testing.T) {
	d, err := Defaults()
	if err != nil {
		t.Fatal(err)
	}
	rc := events.DefaultRunnerConfig()
	for _, name := range []string{"aggregate", "recorder"} {
		c := consumer(&d, name)
		if len(c.BackOff) > 0 {
			t.Errorf("consumer %s: backoff %v floors the runner's retry delays", name, c.BackOff)
		}
		var span time.Duration
		delay := rc.RetryBase
		for range c.MaxDeliver - 1 {
			span += delay
			delay = min(2*delay, rc.RetryMax)
		}
		if span < 3*time.Minute {
			t.Errorf("consumer %s: %d deliveries retry for %v, want an outage of at least 3m survived", name, c.MaxDeliver, span)
		}
	}
}
