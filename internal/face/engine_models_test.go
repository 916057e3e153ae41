package face

import (
	"testing"

	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/pkg/onnx"
)

// engTestModel returns the dev pack's model of the given kind.
func engTestModel(tb testing.TB, kind modelpack.Kind) modelpack.Model {
	tb.Helper()
	half := [3]float32{127.5, 127.5, 127.5}
	switch kind {
	case modelpack.Recognizer:
		return modelpack.Model{Name: "mobilefacenet", Kind: kind, Arch: modelpack.ArchArcFace,
			File: "mobilefacenet-foamliu/mobilefacenet_dynbatch_opset11.onnx", ColorOrder: "RGB", Mean: half, Std: half,
			Crop: modelpack.CropArcFace112, EmbeddingDim: 128}
	case modelpack.GenderAge:
		return modelpack.Model{Name: "genderage2018", Kind: kind, Arch: modelpack.ArchGenderAge2018,
			File: "insightface-genderage-mxnet/insightface_genderage_mxnet2018.onnx", ColorOrder: "RGB",
			Std: [3]float32{1, 1, 1}, Crop: modelpack.CropArcFace112}
	case modelpack.Emotion:
		return modelpack.Model{Name: "fer", Kind: kind, Arch: modelpack.ArchFEROpenCVZoo,
			File: "opencv-zoo-fer/facial_expression_recognition_mobilefacenet_2022july_int8.onnx", ColorOrder: "RGB",
			Mean: half, Std: half, Crop: modelpack.CropArcFace112, Labels: FERLabels}
	}
	tb.Fatalf("no dev model of kind %s", kind)
	return modelpack.Model{}
}

func engTestModelOptions() ModelOptions {
	return ModelOptions{Session: onnx.SessionConfig{IntraOpThreads: 1}}
}
