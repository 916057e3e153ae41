package nats

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
	if cfg.MaxBytes != -1 || cfg.MaxMsgSize != 8<<20 || cfg.Duplicates != 10*time.Minute || cfg.MaxAge != time.Hour {
		t.Errorf("work stream config: %+v", cfg)
	}
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
		{"backoff without ack wait", func(d *Definitions) { d.Consumers[0].AckWait = Duration(time.Second) }, "must equal ack wait"},
		{"backoff longer than max deliver", func(d *Definitions) { d.Consumers[0].MaxDeliver = 2 }, "max deliver"},
		{"no max ack pending", func(d *Definitions) { d.Consumers[0].MaxAckPending = 0 }, "max ack pending"},
		{"duplicate window beyond max age", func(d *Definitions) { d.Streams[0].MaxAge = Duration(time.Minute) }, "duplicate window"},
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
