package bench

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// sample is one series' value; histograms keep their sum and count.
type sample struct {
	Value, Sum, Count float64
}

// snapshot maps a series (name{label="value",...}, labels sorted) to its
// value, summed over every scraped endpoint.
type snapshot map[string]sample

// scrape reads the Prometheus text exposition of every addr's /metrics.
func scrape(ctx context.Context, addrs []string) (snapshot, error) {
	out := snapshot{}
	for _, addr := range addrs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "text/plain")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("scrape %s: %w", addr, err)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("scrape %s: %w", addr, err)
		}
		for name, f := range fams {
			for _, m := range f.GetMetric() {
				k := seriesKey(name, m.GetLabel())
				s := out[k]
				switch {
				case m.Histogram != nil:
					s.Sum += m.Histogram.GetSampleSum()
					s.Count += float64(m.Histogram.GetSampleCount())
				case m.Counter != nil:
					s.Value += m.Counter.GetValue()
				case m.Gauge != nil:
					s.Value += m.Gauge.GetValue()
				case m.Untyped != nil:
					s.Value += m.Untyped.GetValue()
				}
				out[k] = s
			}
		}
	}
	return out, nil
}

func seriesKey(name string, labels []*dto.LabelPair) string {
	if len(labels) == 0 {
		return name
	}
	parts := make([]string, 0, len(labels))
	for _, l := range labels {
		parts = append(parts, l.GetName()+"="+fmt.Sprintf("%q", l.GetValue()))
	}
	sort.Strings(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

// key builds a series key from a name and label pairs (name, value, ...).
func key(name string, kv ...string) string {
	var labels []*dto.LabelPair
	for i := 0; i+1 < len(kv); i += 2 {
		labels = append(labels, &dto.LabelPair{Name: &kv[i], Value: &kv[i+1]})
	}
	return seriesKey(name, labels)
}

// sub returns after − before for every series of after.
func (after snapshot) sub(before snapshot) snapshot {
	out := snapshot{}
	for k, a := range after {
		b := before[k]
		out[k] = sample{Value: a.Value - b.Value, Sum: a.Sum - b.Sum, Count: a.Count - b.Count}
	}
	return out
}

// names returns the metric names present (without labels).
func (s snapshot) names() map[string]bool {
	out := map[string]bool{}
	for k := range s {
		if i := strings.IndexByte(k, '{'); i >= 0 {
			k = k[:i]
		}
		out[k] = true
	}
	return out
}
