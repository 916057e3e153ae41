package modelpack_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/facestream/facestream/internal/modelpack"
)

// TestValidateRejects mutates a valid pack one way at a time: each change
// must be refused with an error wrapping ErrInvalid that names the problem.
func TestValidateRejects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(p *modelpack.Pack)
		want   string
	}{
		{"no detector", func(p *modelpack.Pack) { p.Models = p.Models[1:] }, "no detector"},
		{"two recognizers", func(p *modelpack.Pack) {
			r := p.Models[1]
			r.Name, r.File = "second", "x/second.onnx"
			p.Models = append(p.Models, r)
		}, "two recognizer models"},
		{"no models", func(p *modelpack.Pack) { p.Models = nil }, "no models"},
		{"bad pack name", func(p *modelpack.Pack) { p.Name = "Dev Pack" }, "want lower-case"},
		{"no licence", func(p *modelpack.Pack) { p.License = " " }, "no licence"},
		{"model without licence", func(p *modelpack.Pack) { p.Models[0].License = "" }, "model scrfd_500m: no licence"},
		{"commercial claim", func(p *modelpack.Pack) { p.Commercial = true }, "not every model's licence allows commercial use"},
		{"unknown kind", func(p *modelpack.Pack) { p.Models[3].Kind = "age" }, `kind "age"`},
		{"arch of another kind", func(p *modelpack.Pack) { p.Models[1].Arch = modelpack.ArchSCRFD }, "arch scrfd is a detector, not a recognizer"},
		{"unknown arch", func(p *modelpack.Pack) { p.Models[1].Arch = "facenet" }, `arch "facenet"`},
		{"file escapes the dir", func(p *modelpack.Pack) { p.Models[0].File = "../det.onnx" }, "stay inside the models directory"},
		{"absolute file", func(p *modelpack.Pack) { p.Models[0].File = "/models/det.onnx" }, "relative"},
		{"not onnx", func(p *modelpack.Pack) { p.Models[0].File = "det.bin" }, "not an .onnx file"},
		{"two models, one file", func(p *modelpack.Pack) { p.Models[2].File = p.Models[1].File }, "share the file"},
		{"sha256 not hex", func(p *modelpack.Pack) { p.Models[0].SHA256 = "5E4447F5" }, "want 64 lower-case hex digits"},
		{"no sha256, no reason", func(p *modelpack.Pack) { p.Models[0].SHA256, p.Models[0].Notes = "", "" }, "no sha256 and no notes saying why"},
		{"member without url", func(p *modelpack.Pack) { p.Models[1].Member = "rec.onnx" }, "without an archive url"},
		{"ftp url", func(p *modelpack.Pack) { p.Models[1].URL = "ftp://example.com/x.onnx" }, "want an absolute http(s) url"},
		{"no tensor names", func(p *modelpack.Pack) { p.Models[1].Outputs = nil }, "no input or output tensor names"},
		{"repeated tensor", func(p *modelpack.Pack) { p.Models[0].Outputs[1] = p.Models[0].Outputs[0] }, "is empty or repeated"},
		{"colour order", func(p *modelpack.Pack) { p.Models[1].ColorOrder = "rgb" }, `color_order "rgb"`},
		{"std zero", func(p *modelpack.Pack) { p.Models[2].Std = [3]float32{1, 0, 1} }, "std[1] is 0"},
		{"crop", func(p *modelpack.Pack) { p.Models[1].Crop = "square" }, `crop "square"`},
		{"detector on a crop", func(p *modelpack.Pack) { p.Models[0].Crop = modelpack.CropArcFace112 }, "not crop arcface112"},
		{"half an input size", func(p *modelpack.Pack) { p.Models[1].InputHeight = 0 }, "input size 112x0"},
		{"recognizer without dim", func(p *modelpack.Pack) { p.Models[1].EmbeddingDim = 0 }, "without an embedding_dim"},
		{"recognizer without threshold", func(p *modelpack.Pack) { p.Models[1].Threshold = 0 }, "recognizer threshold 0"},
		{"detector without nms", func(p *modelpack.Pack) { p.Models[0].NMSThreshold = 0 }, "nms threshold 0"},
		{"emotion without labels", func(p *modelpack.Pack) { p.Models[3].Labels = nil }, "without labels"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := lookup(t, "dev") // a fresh copy each time
			c.mutate(&p)
			err := p.Validate()
			if !errors.Is(err, modelpack.ErrInvalid) {
				t.Fatalf("Validate = %v, want an error wrapping ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestParseRefusesUnknownFields(t *testing.T) {
	_, err := modelpack.Parse([]byte(`{"name":"x","descripton":"typo"}`))
	if err == nil || !strings.Contains(err.Error(), `unknown field "descripton"`) {
		t.Errorf("Parse = %v", err)
	}
	if _, err := modelpack.Parse([]byte(`{"name":"x"} {}`)); err == nil {
		t.Error("Parse accepted trailing data")
	}
}
