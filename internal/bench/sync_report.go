package bench

import (
	"fmt"
	"image/color"
	"maps"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// syncChart is the file name of the sync-latency chart.
const syncChart = "sync-latency.png"

func passFail(ok bool) string {
	if ok {
		return "**PASS**"
	}
	return "**FAIL**"
}

func (r *SyncResult) markdown(b *strings.Builder) {
	fmt.Fprintf(b, "## Sync latency: single-image POST /v1/analyze at %.0f %% of capacity (%d CPUs)\n\n", 100*r.Load, r.CPUs)
	b.WriteString("Target (issue 6, item 3): p99 of each request's latency within 2 × the image's model time + 20 ms. ")
	b.WriteString("Requests arrive open-loop (Poisson), each a byte-distinct variant of a test image (a result-cache miss); ")
	b.WriteString("latency is from the scheduled arrival to the whole answer read.\n\n")
	rej := 0
	for _, n := range r.Rejected {
		rej += n
	}
	fmt.Fprintf(b, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(b, "| capacity | %.2f images/s (%s) |\n", r.Capacity, r.CapacitySource)
	fmt.Fprintf(b, "| offered / arrivals drawn / achieved | %.2f / %.2f / %.2f requests/s over %.0f s |\n", r.OfferedRate, r.ArrivalRate, r.AchievedRate, r.DurationS)
	fmt.Fprintf(b, "| requests (analyzed / rejected / failed) | %d (%d / %d / %d) %v; %d faces; at most %d open at once |\n",
		r.Requests, r.Analyzed, rej, r.Failed, r.Rejected, r.Faces, r.MaxOutstanding)
	fmt.Fprintf(b, "| latency p50 / p95 / p99 / max | %.0f / %.0f / %.0f / %.0f ms |\n", r.Latency.P50, r.Latency.P95, r.Latency.P99, r.Latency.Max)
	for _, c := range []struct {
		name string
		c    BoundCheck
	}{{"target", r.Target}, {"strict", r.Strict}} {
		fmt.Fprintf(b, "| %s: model time | %s; mean %.1f ms per request |\n", c.name, c.c.Definition, c.c.ModelMeanMS)
		fmt.Fprintf(b, "| %s: bound 2 × model + 20 ms, p50 / p99 | %.0f / %.0f ms |\n", c.name, c.c.BoundP50MS, c.c.BoundP99MS)
		fmt.Fprintf(b, "| %s: requests within their bound | %.1f %% |\n", c.name, 100*c.c.Within)
		fmt.Fprintf(b, "| %s: p99 of latency − bound / of latency ÷ bound | %+.0f ms / %.2f× → %s |\n", c.name, c.c.OverP99MS, c.c.RatioP99, passFail(c.c.Pass))
		for _, g := range []struct {
			name string
			g    RequestGroup
		}{{"within", c.c.InBound}, {"over", c.c.OverBound}} {
			fmt.Fprintf(b, "| %s: the %d requests %s their bound, mean | latency %.0f ms, bound %.0f ms, decode alone %.1f ms, %.1f megapixels, %.2f faces |\n",
				c.name, g.g.N, g.name, g.g.LatencyMS, g.g.BoundMS, g.g.DecodeMS, g.g.Megapixels, g.g.Faces)
		}
		for _, g := range []struct {
			name string
			g    ArrivalGroup
		}{{"found the pipeline idle (no earlier request open)", c.c.Alone}, {"arrived behind others", c.c.Queued}} {
			fmt.Fprintf(b, "| %s: the %d requests that %s | latency p50 %.0f ms; %.1f %% within; p99 of latency − bound %+.0f ms |\n",
				c.name, g.g.N, g.name, g.g.LatencyP50MS, 100*g.g.Within, g.g.OverP99MS)
		}
	}
	fmt.Fprintf(b, "| images by detector runs (the bench's own detector run, with the service's settings) | %v |\n", r.Model.DetectorRuns)
	fmt.Fprintf(b, "| images whose answered face count differs from the bench's own detector run | %d |\n", r.FaceMismatch)
	fmt.Fprintf(b, "| mean time in the edge (server side) / in the pipeline (image.submitted → result) | %.0f / %.0f ms |\n", r.EdgeMS, r.PipelineMS)
	fmt.Fprintf(b, "| machine load average (1 min) before / after the load | %.1f / %.1f |\n", r.LoadAvg[0], r.LoadAvg[1])
	phases := slices.Sorted(maps.Keys(r.Seconds))
	parts := make([]string, 0, len(phases))
	total := 0.0
	for _, k := range phases {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, r.Seconds[k]))
		total += r.Seconds[k]
	}
	fmt.Fprintf(b, "| time taken (s) | %.0f: %s |\n\n", total, strings.Join(parts, ", "))
	fmt.Fprintf(b, "Bare ONNX Runtime per run, one worker (ms), mean of before (%s) and after (%s) the load: %s.\n\n",
		runsString(r.Model.PerRunBeforeMS), runsString(r.Model.PerRunAfterMS), runsString(r.Model.PerRunMS))
	if len(r.Target.WorstPaths) > 0 {
		fmt.Fprintf(b, "Furthest over their bound: %s.\n\n", strings.Join(r.Target.WorstPaths, "; "))
	}
	b.WriteString("Model runs inside the pipeline during the load:\n\n| model | runs | runs per request | mean ms |\n|---|---|---|---|\n")
	for _, m := range slices.Sorted(maps.Keys(r.ModelRuns)) {
		fmt.Fprintf(b, "| %s | %.0f | %.2f | %.2f |\n", m, r.ModelRuns[m], r.ModelRuns[m]/float64(max(r.Requests, 1)), r.ModelRunMS[m])
	}
	b.WriteString("\nPer-stage split during the load, mean ms per message (`facestream_stage_*`):\n\n| stage | messages | queue wait | handle | blob | decode | inference | database | publish |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Stages {
		fmt.Fprintf(b, "| %s | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", s.Stage, s.Messages, s.QueueWait, s.Handle,
			s.Steps["blob"], s.Steps["decode"], s.Steps["inference"], s.Steps["database"], s.Steps["publish"])
	}
	fmt.Fprintf(b, "\nChart: `%s` (latency against each request's bound; latency distribution).\n\n", syncChart)
}

// chart draws each request's latency against its bound, and the latency
// histogram.
func (r *SyncResult) chart(path string) error {
	var in, out plotter.XYs
	lat := make(plotter.Values, 0, len(r.PerRequest))
	maxB := 0.0
	for _, q := range r.PerRequest {
		if !q.answered() {
			continue
		}
		p := plotter.XY{X: q.BoundMS, Y: q.LatencyMS}
		if q.LatencyMS <= q.BoundMS {
			in = append(in, p)
		} else {
			out = append(out, p)
		}
		lat = append(lat, q.LatencyMS)
		maxB = max(maxB, q.BoundMS)
	}
	if len(lat) == 0 {
		return nil
	}
	s := plot.New()
	s.Title.Text = fmt.Sprintf("Latency vs bound (2 × model + 20 ms): %.1f %% within, %s", 100*r.Target.Within, strings.Trim(passFail(r.Target.Pass), "*"))
	s.X.Label.Text = "bound of the request (ms)"
	s.Y.Label.Text = "latency (ms)"
	for _, set := range []struct {
		name string
		xy   plotter.XYs
		c    color.RGBA
	}{{"within", in, color.RGBA{G: 150, A: 255}}, {"over", out, color.RGBA{R: 200, A: 255}}} {
		if len(set.xy) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(set.xy)
		if err != nil {
			return err
		}
		sc.GlyphStyle.Color, sc.GlyphStyle.Shape, sc.GlyphStyle.Radius = set.c, draw.CircleGlyph{}, vg.Points(2)
		s.Add(sc)
		s.Legend.Add(fmt.Sprintf("%s (%d)", set.name, len(set.xy)), sc)
	}
	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: maxB * 1.05, Y: maxB * 1.05}})
	if err != nil {
		return err
	}
	diag.Color, diag.Dashes = color.RGBA{A: 255}, []vg.Length{vg.Points(4), vg.Points(3)}
	s.Add(diag)
	s.Legend.Add("latency = bound", diag)
	s.Legend.Top, s.Legend.Left = true, true
	s.X.Min, s.Y.Min = 0, 0

	h, err := latencyHistogram(fmt.Sprintf("Latency at %.2f requests/s (%d requests)", r.OfferedRate, len(lat)), "requests", lat,
		mark{"p50", r.Latency.P50, color.RGBA{G: 150, A: 255}}, mark{"p99", r.Latency.P99, color.RGBA{R: 200, A: 255}},
		mark{"bound p50", r.Target.BoundP50MS, color.RGBA{A: 255}})
	if err != nil {
		return err
	}

	return writeSideBySide(path, s, h)
}
