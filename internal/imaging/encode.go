package imaging

import (
	"fmt"
	"runtime"

	"gocv.io/x/gocv"
)

// EncodePNG encodes the image as PNG.
func (m *Image) EncodePNG() ([]byte, error) {
	return m.encode(gocv.PNGFileExt, nil)
}

// EncodeJPEG encodes the image as JPEG with the given quality (1..100; 0
// means 90).
func (m *Image) EncodeJPEG(quality int) ([]byte, error) {
	if quality == 0 {
		quality = 90
	}
	if quality < 1 || quality > 100 {
		return nil, fmt.Errorf("encode jpeg: quality %d outside 1..100", quality)
	}
	return m.encode(gocv.JPEGFileExt, []int{gocv.IMWriteJpegQuality, quality})
}

func (m *Image) encode(ext gocv.FileExt, params []int) ([]byte, error) {
	src, err := m.toMat()
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", ext, err)
	}
	defer src.Close()
	var buf *gocv.NativeByteBuffer
	if len(params) == 0 {
		buf, err = gocv.IMEncode(ext, src)
	} else {
		buf, err = gocv.IMEncodeWithParams(ext, src, params)
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", ext, err)
	}
	defer buf.Close()
	out := append([]byte(nil), buf.GetBytes()...)
	runtime.KeepAlive(m)
	return out, nil
}
