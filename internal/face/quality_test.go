package face

import (
	"strings"
	"testing"
)

func TestQualityAssess(t *testing.T) {
	good := QualityMeasures{Sharpness: 150, Brightness: 120, FaceSize: 120, Score: 0.85, Yaw: 5, Pitch: -3}
	th := DefaultQualityThresholds()
	if q := th.Assess(good); !q.Usable || q.Reason != "ok" || q.QualityMeasures != good {
		t.Fatalf("good face: %+v", q)
	}
	cases := []struct {
		name   string
		mod    func(*QualityMeasures)
		reason string
	}{
		{"blurry", func(m *QualityMeasures) { m.Sharpness = 5 }, "blurry"},
		{"dark", func(m *QualityMeasures) { m.Brightness = 12 }, "too dark"},
		{"bright", func(m *QualityMeasures) { m.Brightness = 250 }, "too bright"},
		{"small", func(m *QualityMeasures) { m.FaceSize = 20 }, "too small"},
		{"score", func(m *QualityMeasures) { m.Score = 0.52 }, "low detection score"},
		{"yaw", func(m *QualityMeasures) { m.Yaw = -70 }, "turned away"},
		{"pitch", func(m *QualityMeasures) { m.Pitch = 50 }, "tilted"},
	}
	for _, c := range cases {
		m := good
		c.mod(&m)
		q := th.Assess(m)
		if q.Usable || !strings.HasPrefix(q.Reason, c.reason) {
			t.Errorf("%s: %+v, want unusable with reason %q", c.name, q, c.reason)
		}
	}
	// Several failures are all reported.
	q := th.Assess(QualityMeasures{Sharpness: 1, Brightness: 10, FaceSize: 10, Score: 0.1})
	if got := strings.Count(q.Reason, "; ") + 1; q.Usable || got != 4 {
		t.Errorf("four failures: %q", q.Reason)
	}
	// A zero threshold disables its rule.
	if q := (QualityThresholds{}).Assess(QualityMeasures{}); !q.Usable {
		t.Errorf("no thresholds: %+v", q)
	}
}
