package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/facestream/facestream/internal/pgtest"
)

func TestParseSearchIndexes(t *testing.T) {
	good := map[string][]SearchIndex{
		"":                          {{}},
		"production":                {{}},
		"16:64":                     {{M: 16, EfConstruction: 64}},
		"production, 32:128,24:100": {{}, {M: 32, EfConstruction: 128}, {M: 24, EfConstruction: 100}},
		"16:64,16:64:halfvec":       {{M: 16, EfConstruction: 64}, {M: 16, EfConstruction: 64, Halfvec: true}},
		"100:1000":                  {{M: 100, EfConstruction: 1000}},
		"2:4":                       {{M: 2, EfConstruction: 4}},
	}
	for in, want := range good {
		got, err := ParseSearchIndexes(in)
		if err != nil {
			t.Errorf("ParseSearchIndexes(%q): %v", in, err)
			continue
		}
		if len(got) != len(want) {
			t.Errorf("ParseSearchIndexes(%q) = %v, want %v", in, got, want)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("ParseSearchIndexes(%q)[%d] = %+v, want %+v", in, i, got[i], want[i])
			}
			if i > 0 || in != "" {
				// String reads back.
				again, err := ParseSearchIndexes(got[i].String())
				if err != nil || len(again) != 1 || again[0] != got[i] {
					t.Errorf("ParseSearchIndexes(%q) = %v, %v: String does not read back", got[i].String(), again, err)
				}
			}
		}
	}
	bad := map[string]string{
		"16":              "want m:ef_construction",
		"16:64:float":     "want m:ef_construction",
		"16:64:halfvec:x": "want m:ef_construction",
		"a:64":            "m: ",
		"16:b":            "ef_construction: ",
		"1:64":            "m 1: want 2..100",
		"101:1000":        "m 101: want 2..100",
		"16:2000":         "ef_construction 2000: want 4..1000",
		"32:40":           "ef_construction 40: want at least 2·m = 64",
		"16:64,16:64":     "listed twice",
		"production,":     "want m:ef_construction",
	}
	for in, want := range bad {
		_, err := ParseSearchIndexes(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSearchIndexes(%q) error %v, want one containing %q", in, err, want)
		}
	}
}

// TestRunSearchIndexes measures three indexes over one small data set: the
// production index, the same definition with explicit parameters, and a
// halfvec one. The benchmark's own CREATE INDEX must match what
// ensure_embedding_index builds but for its parameters, and every index
// must be the one the searches scan (measureIndex checks the plan).
func TestRunSearchIndexes(t *testing.T) {
	// Small tables favour a scan and a sort over the HNSW index: the
	// benchmark's sessions get enable_seqscan = off, as its runtime parameter.
	admin := pgtest.NewDSN(t)
	if strings.Contains(admin, "?") {
		admin += "&enable_seqscan=off"
	} else {
		admin += "?enable_seqscan=off"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := RunSearch(ctx, SearchConfig{
		AdminDSN: admin, Vectors: 3000, Dim: 32, FacesPerIdentity: 5, Queries: 20, IntrinsicDim: 16,
		EfSearch: []int{10, 200}, MaintenanceWorkMem: "64MB", Seed: 7,
		Indexes: []SearchIndex{{}, {M: 16, EfConstruction: 64}, {M: 8, EfConstruction: 32, Halfvec: true}},
	})
	if err != nil {
		t.Fatalf("RunSearch: %v", err)
	}
	if len(res.Indexes) != 3 {
		t.Fatalf("%d index results, want 3", len(res.Indexes))
	}
	prod, explicit, half := res.Indexes[0], res.Indexes[1], res.Indexes[2]
	const with = " WITH (m='16', ef_construction='64')"
	if !strings.Contains(explicit.Definition, with) {
		t.Fatalf("16:64 index definition %q lacks %q", explicit.Definition, with)
	}
	if got := strings.Replace(explicit.Definition, with, "", 1); got != prod.Definition {
		t.Errorf("the benchmark's index differs from ensure_embedding_index's beyond its parameters:\n bench:      %s\n production: %s", got, prod.Definition)
	}
	if want := "((embedding)::halfvec(32)) halfvec_cosine_ops) WITH (m='8', ef_construction='32')"; !strings.Contains(half.Definition, want) {
		t.Errorf("halfvec index definition %q lacks %q", half.Definition, want)
	}
	for _, r := range res.Indexes {
		if r.Bytes <= 0 || r.BuildSeconds <= 0 {
			t.Errorf("%s: %d bytes built in %.3f s", r.Index, r.Bytes, r.BuildSeconds)
		}
		if len(r.Points) != 2 {
			t.Fatalf("%s: %d points, want one per ef_search", r.Index, len(r.Points))
		}
		// 3,000 vectors at ef_search 200: the index finds nearly every true neighbour.
		if p := r.Points[1]; p.Recall10 < 0.9 || p.IdentityRecall < 0.9 {
			t.Errorf("%s at ef_search 200: recall@10 %.3f, identity recall %.3f, want ≥ 0.9", r.Index, p.Recall10, p.IdentityRecall)
		}
		// The block counts are the index's own statistics: a wider search reads more of it.
		if lo, hi := r.Points[0].IndexBlocks, r.Points[1].IndexBlocks; lo < 1 || hi <= lo {
			t.Errorf("%s: %.1f index blocks per query at ef_search 10, %.1f at 200: want at least 1, and more at 200", r.Index, lo, hi)
		}
		if r.Chosen == nil {
			t.Errorf("%s: no ef_search chosen", r.Index)
		}
		// Without the iterative scan the first walk returns what the first
		// batch of search_faces' strict_order scan does: the same rows.
		for _, p := range r.Points {
			switch {
			case r.Index.Halfvec && p.FirstWalkP50MS != 0:
				t.Errorf("%s at ef_search %d: a first-walk comparison was timed for a halfvec index", r.Index, p.EfSearch)
			case !r.Index.Halfvec && (p.FirstWalkP50MS <= 0 || p.FirstWalkSame != 1):
				t.Errorf("%s at ef_search %d: first-walk comparison p50 %.3f ms, same rows for %.2f of the queries; want timed, and all the same",
					r.Index, p.EfSearch, p.FirstWalkP50MS, p.FirstWalkSame)
			}
		}
	}
	if _, err := os.Stat("/proc/loadavg"); err == nil && prod.LoadBefore == 0 {
		t.Errorf("no load average recorded")
	}
	var b strings.Builder
	res.markdown(&b)
	for _, want := range []string{"| production (`ensure_embedding_index`) |", "| 16:64 | 200 |", "| 8:32:halfvec | 10 |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
