package face

import (
	"fmt"

	"github.com/facestream/facestream/internal/imaging"
)

// CropMinFace is the shorter side, in pixels of the picture crops are cut
// from, below which a face's 112-pixel aligned crop would be enlarged from
// fewer pixels than the stored picture holds: such faces are cut from a
// less reduced decode (Picture.ForCrops).
const CropMinFace = 112

// DecodeOptions say how an encoded image becomes the picture analysed.
type DecodeOptions struct {
	// Limits bound decoding (imaging.DefaultLimits when zero).
	Limits imaging.Limits
	// MinSide, when above 0, lets a large JPEG be decoded reduced by 2, 4
	// or 8 as long as its longer side stays at least this many pixels (the
	// detector's input size, 640, is the natural value: the detector scales
	// the picture down to it anyway). 0 decodes it whole.
	MinSide int
	// Orientation is the EXIF orientation (1..8) that turns it upright.
	Orientation int
}

// Picture is an encoded image decoded for analysis, upright, possibly
// reduced (DecodeOptions.MinSide), and how it maps onto the stored picture
// (upright too), whose coordinates results carry.
type Picture struct {
	img              *imaging.Image
	hdr              imaging.Config
	lim              imaging.Limits
	factor           int // the reduction it was decoded with
	orientation      int
	storedW, storedH int
}

// DecodePicture decodes data reduced as far as o.MinSide allows
// (imaging.Reduction) and turns it upright.
func DecodePicture(data []byte, o DecodeOptions) (Picture, error) {
	hdr, err := imaging.DecodeConfig(data)
	if err != nil {
		return Picture{}, fmt.Errorf("decode image: %w", err)
	}
	if o.Limits == (imaging.Limits{}) {
		o.Limits = imaging.DefaultLimits
	}
	return decodeAt(data, o.Limits, hdr, imaging.Reduction(hdr, o.MinSide), o.Orientation)
}

func decodeAt(data []byte, lim imaging.Limits, hdr imaging.Config, factor, orientation int) (Picture, error) {
	img, err := imaging.DecodeReduced(data, lim, factor)
	if err != nil {
		return Picture{}, err
	}
	w, h := hdr.Width, hdr.Height
	if orientation >= 5 && orientation <= 8 {
		w, h = h, w
	}
	return Picture{img: img.Orient(orientation), hdr: hdr, lim: lim, factor: factor, orientation: orientation, storedW: w, storedH: h}, nil
}

// Image is the decoded picture.
func (p Picture) Image() *imaging.Image { return p.img }

// Reduction is the factor the picture was decoded smaller by (1: whole).
func (p Picture) Reduction() int { return p.factor }

// ToStored maps faces found in the picture onto the stored picture.
func (p Picture) ToStored(faces []Face) []Face {
	return scaleFaces(faces, float32(p.storedW)/float32(p.img.Width()), float32(p.storedH)/float32(p.img.Height()))
}

// FromStored maps faces of the stored picture onto the picture.
func (p Picture) FromStored(faces []Face) []Face {
	return scaleFaces(faces, float32(p.img.Width())/float32(p.storedW), float32(p.img.Height())/float32(p.storedH))
}

// ForCrops returns the picture to cut the faces' crops from: p itself when
// it is whole or the smallest face has CropMinFace pixels on its shorter
// side in it, otherwise a less reduced decode of data (the same bytes) in
// which it does, or a whole one. Faces are in stored coordinates.
func (p Picture) ForCrops(data []byte, faces []Face) (Picture, error) {
	if p.factor == 1 || len(faces) == 0 {
		return p, nil
	}
	smallest := min(faces[0].Width(), faces[0].Height())
	for _, f := range faces[1:] {
		smallest = min(smallest, f.Width(), f.Height())
	}
	r := p.factor
	for r > 1 && smallest/float32(r) < CropMinFace {
		r /= 2
	}
	if r == p.factor {
		return p, nil
	}
	return decodeAt(data, p.lim, p.hdr, r, p.orientation)
}

// scaleFaces scales boxes and landmarks by sx, sy (faces unchanged at 1, 1).
func scaleFaces(faces []Face, sx, sy float32) []Face {
	if sx == 1 && sy == 1 {
		return faces
	}
	out := make([]Face, len(faces))
	for i, f := range faces {
		f.Box = [4]float32{f.Box[0] * sx, f.Box[1] * sy, f.Box[2] * sx, f.Box[3] * sy}
		for j := range f.Landmarks {
			f.Landmarks[j] = [2]float32{f.Landmarks[j][0] * sx, f.Landmarks[j][1] * sy}
		}
		out[i] = f
	}
	return out
}
