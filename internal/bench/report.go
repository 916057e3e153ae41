package bench

import (
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Report is everything one `facestream bench` run measured.
type Report struct {
	Command   string            `json:"command"`
	Started   time.Time         `json:"started"`
	Host      string            `json:"host"`
	Pipelines []*PipelineResult `json:"pipelines,omitempty"`
	Search    *SearchResult     `json:"search,omitempty"`
	Sync      *SyncResult       `json:"sync,omitempty"`
}

// Write writes report.json, report.md, per pipeline run
// pipeline-<mode>.png and, with a sync-latency run, sync-latency.png into dir.
func (r *Report) Write(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "report.json")
	if err := os.WriteFile(p, js, 0o644); err != nil {
		return nil, err
	}
	files = append(files, p)
	for _, pr := range r.Pipelines {
		p := filepath.Join(dir, "pipeline-"+pr.Mode+".png")
		if err := pr.chart(p); err != nil {
			return nil, fmt.Errorf("chart: %w", err)
		}
		files = append(files, p)
	}
	if r.Sync != nil {
		p := filepath.Join(dir, syncChart)
		if err := r.Sync.chart(p); err != nil {
			return nil, fmt.Errorf("chart: %w", err)
		}
		files = append(files, p)
	}
	p = filepath.Join(dir, "report.md")
	if err := os.WriteFile(p, []byte(r.Markdown()), 0o644); err != nil {
		return nil, err
	}
	return append(files, p), nil
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# facestream benchmark\n\n`%s` — %s, %s\n\n", r.Command, r.Started.UTC().Format(time.RFC3339), r.Host)
	for _, p := range r.Pipelines {
		p.markdown(&b)
	}
	if r.Sync != nil {
		r.Sync.markdown(&b)
	}
	if r.Search != nil {
		r.Search.markdown(&b)
	}
	return b.String()
}

func (p *PipelineResult) markdown(b *strings.Builder) {
	fmt.Fprintf(b, "## Pipeline, %s (%d CPUs)\n\n", p.Mode, p.CPUs)
	keys := make([]string, 0, len(p.Settings))
	for k := range p.Settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b.WriteString("Settings: ")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "`%s=%s`", k, p.Settings[k])
	}
	rej := 0
	for _, n := range p.Rejected {
		rej += n
	}
	fmt.Fprintf(b, "\n\n| measure | value |\n|---|---|\n")
	fmt.Fprintf(b, "| images (analyzed / rejected) | %d (%d / %d) %v |\n", p.Images, p.Analyzed, rej, p.Rejected)
	fmt.Fprintf(b, "| faces | %d |\n", p.Faces)
	fmt.Fprintf(b, "| wall time | %.2f s |\n", p.Seconds)
	fmt.Fprintf(b, "| throughput | **%.2f images/s**, %.2f faces/s |\n", p.ImagesPerSec, p.FacesPerSec)
	fmt.Fprintf(b, "| end-to-end latency p50 / p95 / p99 / max | %.0f / %.0f / %.0f / %.0f ms |\n", p.Latency.P50, p.Latency.P95, p.Latency.P99, p.Latency.Max)
	c := p.Ceiling
	fmt.Fprintf(b, "| raw model ceiling (same work, %d worker(s) × %d intra-op threads, spinning %v) | %.2f images/s in %.2f s |\n",
		c.Workers, c.IntraOpThreads, c.Spinning, c.ImagesPerSec, c.Seconds)
	fmt.Fprintf(b, "| ceiling replays before / after the run | %.2f / %.2f images/s |\n", p.CeilingBefore.ImagesPerSec, p.CeilingAfter.ImagesPerSec)
	fmt.Fprintf(b, "| ceiling inputs | per-face models on real aligned faces of the measured images; a synthetic pattern for: %s |\n", strings.Join(c.SyntheticInputs, ", "))
	fmt.Fprintf(b, "| **efficiency** (pipeline ÷ ceiling: one detector run per image + per-face models) | **%.2f** |\n", p.Efficiency)
	fmt.Fprintf(b, "| model-work ceiling (the detector runs the pipeline made: %d extra at 320 px) | %.2f images/s |\n", extraDet(p), p.WorkCeiling.ImagesPerSec)
	fmt.Fprintf(b, "| efficiency against the pipeline's own model work | %.2f |\n", p.WorkEfficiency)
	if p.CPUSeconds > 0 && p.Images > 0 {
		fmt.Fprintf(b, "| CPU per image: pipeline / ceiling (load-independent) | %.1f / %.1f ms |\n",
			1000*p.CPUSeconds/float64(p.Images), 1000*p.Ceiling.CPUSeconds/float64(p.Images))
		fmt.Fprintf(b, "| **CPU efficiency** (ceiling CPU ÷ pipeline CPU per image) | **%.2f** |\n", p.CPUEfficiency)
	}
	fmt.Fprintf(b, "| machine load average before / after the run (%d CPUs) | %.2f / %.2f |\n\n", p.CPUs, p.LoadBefore, p.LoadAfter)

	b.WriteString("Raw model time per run in the ceiling replay (ms): ")
	kinds := make([]string, 0, len(c.PerRunMS))
	for k := range c.PerRunMS {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for i, k := range kinds {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "%s %.2f", k, c.PerRunMS[k])
	}
	b.WriteString("\n\nModel runs inside the pipeline (native Session.Run, `facestream_model_inference_seconds`):\n\n| model | runs | runs per image | mean ms |\n|---|---|---|---|\n")
	models := make([]string, 0, len(p.ModelRuns))
	for m := range p.ModelRuns {
		models = append(models, m)
	}
	slices.Sort(models)
	for _, m := range models {
		fmt.Fprintf(b, "| %s | %.0f | %.2f | %.2f |\n", m, p.ModelRuns[m], p.ModelRuns[m]/float64(max(p.Images, 1)), p.ModelMS[m])
	}
	b.WriteString("\nPer-stage split, mean ms per message (`facestream_stage_*`):\n\n| stage | messages | queue wait | handle | blob | decode | inference | database | publish |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range p.Stages {
		fmt.Fprintf(b, "| %s | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", s.Stage, s.Messages, s.QueueWait, s.Handle,
			s.Steps["blob"], s.Steps["decode"], s.Steps["inference"], s.Steps["database"], s.Steps["publish"])
	}
	fmt.Fprintf(b, "\nChart: `pipeline-%s.png` (latency distribution; completed images per second over the run).\n\n", p.Mode)
}

// chart draws the latency histogram and the throughput over time side by side.
func (p *PipelineResult) chart(path string) error {
	lat := make(plotter.Values, 0, len(p.Outcomes))
	var first time.Time
	for _, o := range p.Outcomes {
		lat = append(lat, float64(o.Latency)/float64(time.Millisecond))
		if first.IsZero() || o.Submitted.Before(first) {
			first = o.Submitted
		}
	}
	h, err := latencyHistogram(fmt.Sprintf("End-to-end latency (%s, %d images)", p.Mode, len(lat)), "images", lat,
		mark{"p50", p.Latency.P50, color.RGBA{G: 150, A: 255}}, mark{"p95", p.Latency.P95, color.RGBA{R: 230, G: 140, A: 255}},
		mark{"p99", p.Latency.P99, color.RGBA{R: 200, A: 255}})
	if err != nil {
		return err
	}

	// Completions per second, in 1 s bins.
	bins := map[int]int{}
	last := 0
	for _, o := range p.Outcomes {
		s := int(o.Done.Sub(first).Seconds())
		bins[s]++
		last = max(last, s)
	}
	xy := make(plotter.XYs, 0, last+1)
	for s := 0; s <= last; s++ {
		xy = append(xy, plotter.XY{X: float64(s) + 0.5, Y: float64(bins[s])})
	}
	t := plot.New()
	t.Title.Text = fmt.Sprintf("Throughput: %.2f images/s (ceiling %.2f, efficiency %.2f)", p.ImagesPerSec, p.Ceiling.ImagesPerSec, p.Efficiency)
	t.X.Label.Text = "time since first submission (s)"
	t.Y.Label.Text = "images completed per second"
	line, points, err := plotter.NewLinePoints(xy)
	if err != nil {
		return err
	}
	line.Color = color.RGBA{R: 70, G: 130, B: 180, A: 255}
	points.Shape = draw.CircleGlyph{}
	t.Add(line, points)
	for _, ref := range []struct {
		name string
		v    float64
		c    color.RGBA
	}{{"pipeline mean", p.ImagesPerSec, color.RGBA{G: 150, A: 255}}, {"raw model ceiling", p.Ceiling.ImagesPerSec, color.RGBA{R: 200, A: 255}}} {
		l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: ref.v}, {X: float64(last + 1), Y: ref.v}})
		if err != nil {
			return err
		}
		l.Color, l.Width, l.Dashes = ref.c, vg.Points(2), []vg.Length{vg.Points(4), vg.Points(3)}
		t.Add(l)
		t.Legend.Add(fmt.Sprintf("%s %.2f/s", ref.name, ref.v), l)
	}
	t.Legend.Top = true
	t.Y.Min = 0
	t.Y.Max = max(t.Y.Max, p.Ceiling.ImagesPerSec*1.15)

	return writeSideBySide(path, h, t)
}

// mark is a dashed vertical line of a latency histogram, with its legend.
type mark struct {
	name string
	v    float64
	c    color.RGBA
}

// latencyHistogram is a histogram of latencies (ms) in 30 bins with a
// dashed line and a legend entry at each mark.
func latencyHistogram(title, yLabel string, lat plotter.Values, marks ...mark) (*plot.Plot, error) {
	h := plot.New()
	h.Title.Text = title
	h.X.Label.Text = "latency (ms)"
	h.Y.Label.Text = yLabel
	hist, err := plotter.NewHist(lat, 30)
	if err != nil {
		return nil, err
	}
	hist.FillColor = color.RGBA{R: 70, G: 130, B: 180, A: 255}
	h.Add(hist)
	for _, q := range marks {
		l, err := plotter.NewLine(plotter.XYs{{X: q.v, Y: 0}, {X: q.v, Y: maxBin(hist)}})
		if err != nil {
			return nil, err
		}
		l.Color, l.Width, l.Dashes = q.c, vg.Points(2), []vg.Length{vg.Points(4), vg.Points(3)}
		h.Add(l)
		h.Legend.Add(fmt.Sprintf("%s %.0f ms", q.name, q.v), l)
	}
	h.Legend.Top = true
	h.Y.Max = maxBin(hist) * 1.3 // room for the legend above the bars
	return h, nil
}

// writeSideBySide draws two plots side by side into a 1200×480 pt PNG at
// path.
func writeSideBySide(path string, left, right *plot.Plot) error {
	img := vgimg.New(vg.Points(1200), vg.Points(480))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Points(20), PadY: vg.Points(10), PadTop: vg.Points(10), PadBottom: vg.Points(10), PadLeft: vg.Points(10), PadRight: vg.Points(10)}
	canvases := plot.Align([][]*plot.Plot{{left, right}}, tiles, dc)
	left.Draw(canvases[0][0])
	right.Draw(canvases[0][1])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func maxBin(h *plotter.Histogram) float64 {
	m := 0.0
	for _, b := range h.Bins {
		m = max(m, b.Weight)
	}
	return m
}

// extraDet is the number of detector runs beyond one per image.
func extraDet(p *PipelineResult) int {
	for m, n := range p.ModelRuns {
		if strings.HasPrefix(m, "det") || strings.Contains(m, "scrfd") || strings.Contains(m, "yunet") {
			return max(int(n)-p.Images, 0)
		}
	}
	return 0
}
