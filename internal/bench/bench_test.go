package bench

import (
	"math"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := summarize(ds)
	if l.N != 100 || l.P50 != 50 || l.P95 != 95 || l.P99 != 99 || l.Max != 100 || l.Mean != 50.5 {
		t.Errorf("summarize 1..100 ms = %+v", l)
	}
	if got := summarize(nil); got != (Latency{}) {
		t.Errorf("summarize(nil) = %+v", got)
	}
}

func TestTopKKeepsTheBest(t *testing.T) {
	var k topK
	for i, s := range []float32{0.1, 0.9, 0.5, 0.3, 0.95, 0.2, 0.8, 0.7, 0.6, 0.4, 0.05, 0.85} {
		k.add(s, i)
	}
	want := []int{4, 1, 11, 6, 7, 8, 2, 9, 3, 5}
	for i, w := range want {
		if k.idx[i] != w {
			t.Fatalf("top-10 order %v, want %v", k.idx, want)
		}
	}
}

func TestGeneratorIsClustered(t *testing.T) {
	g := newGenerator(SearchConfig{Dim: 128, FacesPerIdentity: 5, Seed: 3})
	q := g.queries(10)
	var first []float32
	for range 20000 {
		v := g.next()
		if first == nil {
			first = v
		}
	}
	if s := g.sameCos.mean(); s < 0.45 || s > 0.85 {
		t.Errorf("same-identity cosine %.2f, want a recognizer-like 0.45..0.85", s)
	}
	if o := g.otherCos.mean(); math.Abs(o) > 0.05 {
		t.Errorf("different-identity cosine %.3f, want about 0", o)
	}
	// The first stored identity is the first query's: they are similar.
	if c := dot(q[0], first); c < 0.3 {
		t.Errorf("query 0 and the first stored face: cosine %.2f, want the same identity", c)
	}
	if g.identities < 20000/9 || g.identities > 20000/3 {
		t.Errorf("%d identities for 20000 faces of mean cluster 5", g.identities)
	}
}

func TestWithDatabase(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u@h:5432/facestream?sslmode=disable": "postgres://u@h:5432/x?sslmode=disable",
		"postgres://u@h/db": "postgres://u@h/x",
	} {
		if got := withDatabase(in, "x"); got != want {
			t.Errorf("withDatabase(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestInterleave(t *testing.T) {
	jobs := []job{{kind: "a"}, {kind: "a"}, {kind: "a"}, {kind: "b"}, {kind: "c"}}
	got := interleave(jobs)
	if len(got) != 5 || got[0].kind != "a" || got[1].kind != "b" || got[2].kind != "c" || got[3].kind != "a" {
		t.Errorf("interleave = %v", got)
	}
}
