package face

import (
	"fmt"

	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
)

// CropFor cuts, from the source image, the crop that model m takes for face
// f, without loading the model: the 5-point aligned crop (AlignedCrop) at
// the model's input size for modelpack.CropArcFace112, or the bbox-centred
// crop (BBoxCropTransform) for modelpack.CropBBox. Sizes left 0 in the
// manifest are the architecture's: 96 for buffalo genderage, else 112. A
// detect stage uses it to cut every crop the pack's later models need while
// it still holds the decoded picture.
func CropFor(img *imaging.Image, f Face, m modelpack.Model) (*imaging.Image, error) {
	size := m.InputWidth
	if size == 0 {
		size = 112
		if m.Arch == modelpack.ArchGenderAgeBuffalo {
			size = 96
		}
	}
	if m.InputHeight != 0 && m.InputHeight != size {
		return nil, fmt.Errorf("crop for %s: input %dx%d is not square", m.Name, m.InputWidth, m.InputHeight)
	}
	switch m.Crop {
	case modelpack.CropBBox:
		crop, err := img.WarpAffine(BBoxCropTransform(f.Box, size), size, size)
		if err != nil {
			return nil, fmt.Errorf("crop for %s: %w", m.Name, err)
		}
		return crop, nil
	case modelpack.CropArcFace112, "":
		crop, _, err := AlignedCrop(img, f.Landmarks, size)
		if err != nil {
			return nil, fmt.Errorf("crop for %s: %w", m.Name, err)
		}
		return crop, nil
	default:
		return nil, fmt.Errorf("crop for %s: crop kind %q is not a face crop", m.Name, m.Crop)
	}
}
