package modelpack_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/facestream/facestream/internal/modelpack"
)

func lookup(t *testing.T, name string) modelpack.Pack {
	t.Helper()
	p, err := modelpack.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func model(t *testing.T, p modelpack.Pack, k modelpack.Kind) modelpack.Model {
	t.Helper()
	m, ok := p.Model(k)
	if !ok {
		t.Fatalf("pack %s has no %s", p.Name, k)
	}
	return m
}

// TestBuiltinPacksValidate: every embedded pack parses strictly, validates,
// is named after its file, and survives a JSON round trip unchanged.
func TestBuiltinPacksValidate(t *testing.T) {
	packs, err := modelpack.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range packs {
		names = append(names, p.Name)
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		again, err := modelpack.Parse(data)
		if err != nil {
			t.Errorf("%s: round trip: %v", p.Name, err)
		}
		a, _ := json.Marshal(again)
		if string(a) != string(data) {
			t.Errorf("%s: JSON round trip changed the pack", p.Name)
		}
	}
	want := []string{"antelopev2", "buffalo_l", "buffalo_m", "buffalo_s", "buffalo_sc", "dev", "dev-yunet"}
	if !slices.Equal(names, want) {
		t.Errorf("built-in packs %v, want %v", names, want)
	}
	if !slices.Equal(modelpack.Names(), want) {
		t.Errorf("Names() = %v", modelpack.Names())
	}
	if _, err := modelpack.Lookup(modelpack.DefaultPack); err != nil {
		t.Errorf("default pack: %v", err)
	}
	for _, bad := range []string{"nope", "", "../dev", "dev/../dev"} {
		_, err := modelpack.Lookup(bad)
		if !errors.Is(err, modelpack.ErrUnknownPack) || !strings.Contains(err.Error(), "buffalo_l") {
			t.Errorf("Lookup(%q) = %v, want ErrUnknownPack listing the packs", bad, err)
		}
	}
}

// TestDevPack pins the dev pack to the models in ../shared/models and the
// preprocessing MODELS.md documents for them.
func TestDevPack(t *testing.T) {
	p := lookup(t, "dev")
	if p.Commercial {
		t.Error("dev holds InsightFace weights: it must not claim commercial use")
	}
	det := model(t, p, modelpack.Detector)
	if det.File != "insightface/det_500m.onnx" || det.Arch != modelpack.ArchSCRFD ||
		!slices.Equal(det.Inputs, []string{"input.1"}) ||
		!slices.Equal(det.Outputs, []string{"443", "468", "493", "446", "471", "496", "449", "474", "499"}) ||
		det.InputWidth != 640 || !det.DynamicSize || det.ColorOrder != "RGB" ||
		det.Mean != [3]float32{127.5, 127.5, 127.5} || det.Std != [3]float32{128, 128, 128} ||
		det.Threshold != 0.5 || det.NMSThreshold != 0.4 || det.Crop != modelpack.CropLetterbox {
		t.Errorf("dev detector = %+v", det)
	}
	rec := model(t, p, modelpack.Recognizer)
	if rec.File != "mobilefacenet-foamliu/mobilefacenet_dynbatch_opset11.onnx" || rec.EmbeddingDim != 128 ||
		rec.ColorOrder != "RGB" || rec.Mean != [3]float32{127.5, 127.5, 127.5} || rec.Std != [3]float32{127.5, 127.5, 127.5} ||
		rec.Crop != modelpack.CropArcFace112 || !rec.DynamicBatch || rec.Threshold <= 0 {
		t.Errorf("dev recognizer = %+v", rec)
	}
	ga := model(t, p, modelpack.GenderAge)
	if ga.Arch != modelpack.ArchGenderAge2018 || ga.Mean != [3]float32{} || ga.Std != [3]float32{1, 1, 1} || ga.Crop != modelpack.CropArcFace112 || ga.ColorOrder != "RGB" {
		t.Errorf("dev genderage = %+v", ga)
	}
	emo := model(t, p, modelpack.Emotion)
	if !slices.Equal(emo.Labels, []string{"angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised"}) ||
		emo.Mean != [3]float32{127.5, 127.5, 127.5} || emo.Std != [3]float32{127.5, 127.5, 127.5} || emo.ColorOrder != "RGB" {
		t.Errorf("dev emotion = %+v", emo)
	}
	for _, m := range p.Models {
		if !m.ChecksumKnown() || m.Size == 0 {
			t.Errorf("dev model %s: checksum and size must be known", m.Name)
		}
	}

	y := model(t, lookup(t, "dev-yunet"), modelpack.Detector)
	if y.File != "yunet/face_detection_yunet_2023mar.onnx" || y.ColorOrder != "BGR" || y.Mean != [3]float32{} ||
		y.Std != [3]float32{1, 1, 1} || y.InputWidth != 640 || y.DynamicSize || y.Threshold != 0.6 || !y.Commercial {
		t.Errorf("dev-yunet detector = %+v", y)
	}
	dy, _ := lookup(t, "dev-yunet").Model(modelpack.Recognizer)
	if dy.File != rec.File || dy.Threshold != rec.Threshold {
		t.Errorf("dev-yunet's recognizer (%s, threshold %v) must be dev's (%s, %v)", dy.File, dy.Threshold, rec.File, rec.Threshold)
	}
	if lookup(t, "dev-yunet").Commercial {
		t.Error("dev-yunet still holds non-commercial models")
	}
}

// TestInsightFacePacks checks the model-zoo packs: official v0.7 URLs,
// non-commercial, the documented members and tensor names, and exactly the
// checksums this project could not find left empty.
func TestInsightFacePacks(t *testing.T) {
	unknown := map[string]bool{}
	for _, name := range []string{"buffalo_l", "buffalo_m", "buffalo_s", "buffalo_sc", "antelopev2"} {
		p := lookup(t, name)
		url := "https://github.com/deepinsight/insightface/releases/download/v0.7/" + name + ".zip"
		if p.URL != url || p.SHA256 == "" || p.ArchiveSize == 0 {
			t.Errorf("%s: archive %q sha256 %q size %d", name, p.URL, p.SHA256, p.ArchiveSize)
		}
		if p.Commercial || !strings.Contains(p.License, "non-commercial") {
			t.Errorf("%s: licence must say non-commercial: %q", name, p.License)
		}
		for _, m := range p.Models {
			if m.URL != url || m.Member == "" || m.Commercial {
				t.Errorf("%s/%s: url %q member %q commercial %v", name, m.Name, m.URL, m.Member, m.Commercial)
			}
			if !m.ChecksumKnown() {
				unknown[name+"/"+m.Name] = true
			}
		}
		det := model(t, p, modelpack.Detector)
		if det.Inputs[0] != "input.1" || det.Mean != [3]float32{127.5, 127.5, 127.5} || det.Std != [3]float32{128, 128, 128} {
			t.Errorf("%s detector preprocessing %+v", name, det)
		}
		rec := model(t, p, modelpack.Recognizer)
		if rec.EmbeddingDim != 512 || rec.Std != [3]float32{127.5, 127.5, 127.5} {
			t.Errorf("%s recognizer %+v", name, rec)
		}
	}
	l := lookup(t, "buffalo_l")
	if d := model(t, l, modelpack.Detector); d.Member != "det_10g.onnx" || !slices.Equal(d.Outputs, []string{"448", "471", "494", "451", "474", "497", "454", "477", "500"}) {
		t.Errorf("buffalo_l detector %+v", d)
	}
	if r := model(t, l, modelpack.Recognizer); r.Member != "w600k_r50.onnx" || !slices.Equal(r.Outputs, []string{"683"}) {
		t.Errorf("buffalo_l recognizer %+v", r)
	}
	if g := model(t, l, modelpack.GenderAge); g.InputWidth != 96 || g.Crop != modelpack.CropBBox || g.Inputs[0] != "data" || g.Outputs[0] != "fc1" || g.Std != [3]float32{1, 1, 1} {
		t.Errorf("buffalo_l genderage %+v", g)
	}
	if r := model(t, lookup(t, "buffalo_sc"), modelpack.Recognizer); r.Member != "w600k_mbf.onnx" || r.Outputs[0] != "516" {
		t.Errorf("buffalo_sc recognizer %+v", r)
	}
	if got := lookup(t, "buffalo_sc").Kinds(); !slices.Equal(got, []modelpack.Kind{modelpack.Detector, modelpack.Recognizer}) {
		t.Errorf("buffalo_sc kinds %v, want detector and recognizer only", got)
	}
	a := lookup(t, "antelopev2")
	if d := model(t, a, modelpack.Detector); d.Member != "antelopev2/scrfd_10g_bnkps.onnx" {
		t.Errorf("antelopev2 detector %+v", d)
	}
	if r := model(t, a, modelpack.Recognizer); r.Member != "antelopev2/glintr100.onnx" || !r.TensorsFromModel {
		t.Errorf("antelopev2 recognizer %+v", r)
	}
	want := map[string]bool{"buffalo_m/genderage": true, "buffalo_s/genderage": true}
	if len(unknown) != len(want) {
		t.Errorf("models without a checksum: %v, want %v", unknown, want)
	}
	for k := range want {
		if !unknown[k] {
			t.Errorf("models without a checksum: %v, want %v", unknown, want)
		}
	}
}
