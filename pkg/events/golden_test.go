package events_test

import (
	"bytes"
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/facestream/facestream/pkg/events"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// renderMsg writes a NATS message as a golden file: the subject, every
// header sorted by name, a blank line, then the data byte for byte (base64
// after a marker line when it is not UTF-8 text).
func renderMsg(m *nats.Msg) []byte {
	var b bytes.Buffer
	b.WriteString("subject: " + m.Subject + "\n")
	keys := make([]string, 0, len(m.Header))
	for k := range m.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range m.Header[k] {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	b.WriteString("\n")
	if utf8.Valid(m.Data) {
		b.Write(m.Data)
	} else {
		b.WriteString("base64:" + base64.StdEncoding.EncodeToString(m.Data))
	}
	return b.Bytes()
}

// parseMsg reads a golden file back into a NATS message.
func parseMsg(t *testing.T, golden []byte) *nats.Msg {
	t.Helper()
	head, data, ok := bytes.Cut(golden, []byte("\n\n"))
	if !ok {
		t.Fatal("golden file has no blank line after the headers")
	}
	m := nats.NewMsg("")
	for i, line := range strings.Split(string(head), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("golden header line %q", line)
		}
		if i == 0 {
			m.Subject = v
			continue
		}
		m.Header[k] = append(m.Header[k], v)
	}
	if b64, ok := bytes.CutPrefix(data, []byte("base64:")); ok {
		raw, err := base64.StdEncoding.DecodeString(string(b64))
		if err != nil {
			t.Fatalf("golden data: %v", err)
		}
		data = raw
	}
	m.Data = data
	return m
}

// TestGoldenWireFormat pins the exact wire form (subject, headers, data) of
// every event type, and decodes each golden file back to its payload.
func TestGoldenWireFormat(t *testing.T) {
	for _, s := range samples(t) {
		t.Run(s.name, func(t *testing.T) {
			msg, err := events.Encode(s.event)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			got := renderMsg(msg)
			path := filepath.Join("testdata", "golden", s.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden file (run go test ./pkg/events -update): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("wire format changed; if intended, run go test ./pkg/events -update\n--- got\n%s\n--- want\n%s", got, want)
			}

			// The golden bytes decode to the same event and payload.
			back, err := events.Decode(parseMsg(t, want))
			if err != nil {
				t.Fatalf("decode golden: %v", err)
			}
			assertSameEvent(t, back, s)
		})
	}
}

// assertSameEvent checks that e carries the sample's attributes and payload.
func assertSameEvent(t *testing.T, e events.Event, s sample) {
	t.Helper()
	want := s.event.CloudEvent
	got := e.CloudEvent
	if got.ID() != want.ID() || got.Source() != want.Source() || got.Type() != want.Type() ||
		got.Subject() != want.Subject() || !got.Time().Equal(want.Time()) ||
		got.DataContentType() != want.DataContentType() || got.SpecVersion() != want.SpecVersion() {
		t.Errorf("attributes differ:\n got %v\nwant %v", got.Context, want.Context)
	}
	if !reflect.DeepEqual(got.Extensions(), want.Extensions()) {
		t.Errorf("extensions = %v, want %v", got.Extensions(), want.Extensions())
	}
	if e.TraceParent != s.event.TraceParent {
		t.Errorf("traceparent = %q, want %q", e.TraceParent, s.event.TraceParent)
	}
	if !bytes.Equal(got.Data(), want.Data()) {
		t.Errorf("data differs:\n got %q\nwant %q", got.Data(), want.Data())
	}
	if s.submission != nil {
		sub, err := events.ParseImageSubmitted(e)
		if err != nil {
			t.Fatalf("parse image.submitted: %v", err)
		}
		want := *s.submission
		if want.Ref != nil {
			want.ContentType = ""
		}
		if !reflect.DeepEqual(sub, want) {
			t.Errorf("submission = %+v, want %+v", sub, want)
		}
		return
	}
	p := reflect.New(reflect.TypeOf(s.payload).Elem()).Interface()
	if err := e.Decode(p); err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	if !reflect.DeepEqual(p, s.payload) {
		t.Errorf("payload differs:\n got %+v\nwant %+v", p, s.payload)
	}
}

// TestEveryTypeHasASample keeps the golden files complete when a type is
// added.
func TestEveryTypeHasASample(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range samples(t) {
		seen[s.event.CloudEvent.Type()] = true
	}
	for _, typ := range events.Types() {
		if !seen[typ] {
			t.Errorf("no golden sample of %s", typ)
		}
	}
}
