package face

// A deliberately naive, independent port of InsightFace's scrfd.py
// (python-package/insightface/model_zoo/scrfd.py: SCRFD.detect, forward,
// distance2bbox, distance2kps, nms), used only to check the production
// decoder. It follows the Python line by line with plain loops and slices of
// float64 rows, builds the input blob pixel by pixel as
// cv2.dnn.blobFromImage(img, 1/128, size, (127.5,)*3, swapRB=True) would,
// and has its own NMS written the numpy way (an "order" array shrunk by
// index arithmetic). It shares nothing with the production decoder but the
// ONNX session type and OpenCV's bilinear resize (scrfd.py calls
// cv2.resize too).

import (
	"path/filepath"
	"sort"
	"testing"

	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/pkg/onnx"
)

type refSCRFD struct {
	sess         *onnx.Session
	inputW       int
	inputH       int
	fmc          int
	featStrides  []int
	numAnchors   int
	useKps       bool
	nmsThreshold float64
}

func newRefSCRFD(t *testing.T, rt *onnx.Runtime, models string, m modelpack.Model) *refSCRFD {
	t.Helper()
	sess, err := rt.NewSession(filepath.Join(models, m.File), onnx.SessionConfig{IntraOpThreads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sess.Close() })
	r := &refSCRFD{sess: sess, nmsThreshold: 0.4}
	// _init_vars
	shape := sess.Inputs()[0].Shape
	if shape[2] > 0 {
		r.inputW, r.inputH = int(shape[3]), int(shape[2])
	} else {
		r.inputW, r.inputH = 640, 640 // prepare(input_size=(640, 640))
	}
	r.useKps = false
	r.numAnchors = 1
	switch len(sess.Outputs()) {
	case 6:
		r.fmc, r.featStrides, r.numAnchors = 3, []int{8, 16, 32}, 2
	case 9:
		r.fmc, r.featStrides, r.numAnchors, r.useKps = 3, []int{8, 16, 32}, 2, true
	case 10:
		r.fmc, r.featStrides, r.numAnchors = 5, []int{8, 16, 32, 64, 128}, 1
	case 15:
		r.fmc, r.featStrides, r.numAnchors, r.useKps = 5, []int{8, 16, 32, 64, 128}, 1, true
	default:
		t.Fatalf("reference: %d outputs", len(sess.Outputs()))
	}
	return r
}

// forward returns, per stride, the rows [x1 y1 x2 y2], the scores and the
// keypoint rows [x0 y0 … x4 y4] of the anchors scoring at least threshold,
// in input-image coordinates.
func (r *refSCRFD) forward(t *testing.T, detImg [][][3]uint8, threshold float64) (scoresList []float64, bboxesList [][4]float64, kpssList [][10]float64) {
	inputHeight, inputWidth := len(detImg), len(detImg[0])
	// blob = cv2.dnn.blobFromImage(img, 1.0/128, input_size, (127.5, 127.5, 127.5), swapRB=True)
	blob := onnx.NewTensor(1, 3, int64(inputHeight), int64(inputWidth))
	for c := 0; c < 3; c++ {
		for y := 0; y < inputHeight; y++ {
			for x := 0; x < inputWidth; x++ {
				v := float64(detImg[y][x][2-c]) // swapRB: channel 0 is R, stored third in BGR
				blob.Data[c*inputHeight*inputWidth+y*inputWidth+x] = float32((v - 127.5) * (1.0 / 128))
			}
		}
	}
	netOuts, err := r.sess.Run(blob)
	if err != nil {
		t.Fatal(err)
	}
	fmc := r.fmc
	for idx, stride := range r.featStrides {
		scores := netOuts[idx].Data
		bboxPreds := netOuts[idx+fmc].Data
		var kpsPreds []float32
		if r.useKps {
			kpsPreds = netOuts[idx+fmc*2].Data
		}
		height := inputHeight / stride
		width := inputWidth / stride
		// anchor_centers = np.stack(np.mgrid[:height, :width][::-1], axis=-1) * stride, reshaped to (-1, 2),
		// then each repeated _num_anchors times.
		var anchorCenters [][2]float64
		for i := 0; i < height; i++ {
			for j := 0; j < width; j++ {
				for a := 0; a < r.numAnchors; a++ {
					anchorCenters = append(anchorCenters, [2]float64{float64(j * stride), float64(i * stride)})
				}
			}
		}
		if len(anchorCenters) != len(scores) {
			t.Fatalf("reference: stride %d: %d anchors, %d scores", stride, len(anchorCenters), len(scores))
		}
		// pos_inds = np.where(scores >= threshold)[0]
		var posInds []int
		for i := range scores {
			if float64(scores[i]) >= threshold {
				posInds = append(posInds, i)
			}
		}
		for _, i := range posInds {
			s := float64(stride)
			p := anchorCenters[i]
			// distance2bbox(anchor_centers, bbox_preds * stride)
			bboxesList = append(bboxesList, [4]float64{
				p[0] - float64(bboxPreds[i*4+0])*s,
				p[1] - float64(bboxPreds[i*4+1])*s,
				p[0] + float64(bboxPreds[i*4+2])*s,
				p[1] + float64(bboxPreds[i*4+3])*s,
			})
			scoresList = append(scoresList, float64(scores[i]))
			if r.useKps {
				// distance2kps: px = points[:, i%2] + distance[:, i]; py = points[:, i%2+1] + distance[:, i+1]
				var k [10]float64
				for j := 0; j < 10; j += 2 {
					k[j] = p[j%2] + float64(kpsPreds[i*10+j])*s
					k[j+1] = p[j%2+1] + float64(kpsPreds[i*10+j+1])*s
				}
				kpssList = append(kpssList, k)
			}
		}
	}
	return scoresList, bboxesList, kpssList
}

// detect is SCRFD.detect(img, threshold, input_size, max_num=0).
func (r *refSCRFD) detect(t *testing.T, img *imaging.Image, threshold float64) []Face {
	t.Helper()
	imgH, imgW := img.Height(), img.Width()
	imRatio := float64(imgH) / float64(imgW)
	modelRatio := float64(r.inputH) / float64(r.inputW)
	var newWidth, newHeight int
	if imRatio > modelRatio {
		newHeight = r.inputH
		newWidth = int(float64(newHeight) / imRatio)
	} else {
		newWidth = r.inputW
		newHeight = int(float64(newWidth) * imRatio)
	}
	detScale := float64(newHeight) / float64(imgH)
	resized, err := img.Resize(newWidth, newHeight) // cv2.resize(img, (new_width, new_height))
	if err != nil {
		t.Fatal(err)
	}
	// det_img = np.zeros((input_size[1], input_size[0], 3), dtype=np.uint8); det_img[:new_height, :new_width, :] = resized_img
	detImg := make([][][3]uint8, r.inputH)
	for y := range detImg {
		detImg[y] = make([][3]uint8, r.inputW)
	}
	for y := 0; y < newHeight; y++ {
		for x := 0; x < newWidth; x++ {
			red, green, blue := resized.At(x, y)
			detImg[y][x] = [3]uint8{blue, green, red}
		}
	}
	scores, bboxes, kpss := r.forward(t, detImg, threshold)

	// order = scores.ravel().argsort()[::-1]
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	// bboxes / det_scale, kpss / det_scale; pre_det = hstack(bboxes, scores)[order]
	preDet := make([][5]float64, len(order))
	preKps := make([][10]float64, len(order))
	for n, i := range order {
		for j := 0; j < 4; j++ {
			preDet[n][j] = bboxes[i][j] / detScale
		}
		preDet[n][4] = scores[i]
		if r.useKps {
			for j := 0; j < 10; j++ {
				preKps[n][j] = kpss[i][j] / detScale
			}
		}
	}
	keep := r.nms(preDet)
	faces := make([]Face, 0, len(keep))
	for _, i := range keep {
		f := Face{
			Box:   [4]float32{float32(preDet[i][0]), float32(preDet[i][1]), float32(preDet[i][2]), float32(preDet[i][3])},
			Score: float32(preDet[i][4]),
		}
		if r.useKps {
			for j := 0; j < 5; j++ {
				f.Landmarks[j] = [2]float32{float32(preKps[i][2*j]), float32(preKps[i][2*j+1])}
			}
		}
		faces = append(faces, f)
	}
	return faces
}

// nms is SCRFD.nms, the numpy way.
func (r *refSCRFD) nms(dets [][5]float64) []int {
	thresh := r.nmsThreshold
	n := len(dets)
	areas := make([]float64, n)
	order := make([]int, n)
	for i, d := range dets {
		areas[i] = (d[2] - d[0] + 1) * (d[3] - d[1] + 1)
		order[i] = i
	}
	// order = scores.argsort()[::-1]
	sort.SliceStable(order, func(a, b int) bool { return dets[order[a]][4] > dets[order[b]][4] })
	var keep []int
	for len(order) > 0 {
		i := order[0]
		keep = append(keep, i)
		var inds []int
		for k, j := range order[1:] {
			xx1 := max(dets[i][0], dets[j][0])
			yy1 := max(dets[i][1], dets[j][1])
			xx2 := min(dets[i][2], dets[j][2])
			yy2 := min(dets[i][3], dets[j][3])
			w := max(0.0, xx2-xx1+1)
			h := max(0.0, yy2-yy1+1)
			inter := w * h
			ovr := inter / (areas[i] + areas[j] - inter)
			if ovr <= thresh {
				inds = append(inds, k)
			}
		}
		next := make([]int, len(inds))
		for k, ind := range inds {
			next[k] = order[ind+1]
		}
		order = next
	}
	return keep
}
