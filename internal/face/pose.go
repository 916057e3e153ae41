package face

import "math"

// Pose is a head pose in degrees, estimated from the 5 landmarks.
//
// Sign convention (image coordinates, as the viewer sees the picture):
//
//   - Yaw > 0: the face turns towards the image's right edge (the nose
//     points right; the subject turns to their own left). Yaw < 0: towards
//     the image's left edge.
//   - Pitch > 0: the face tilts up (chin raised, nose points above the
//     image centre line). Pitch < 0: the face looks down.
//   - Roll > 0: the eye line turns clockwise on screen (the eye on the
//     image's right is lower than the one on the left). Roll < 0:
//     anticlockwise.
//
// A frontal, upright face is (0, 0, 0). This is the convention InspireFace's
// tests use for yaw and pitch (right-turned face: yaw in (10, 90); raised
// face: pitch > 5).
type Pose struct {
	Yaw   float32 `json:"yaw"`
	Pitch float32 `json:"pitch"`
	Roll  float32 `json:"roll"`
}

// poseModel is a mean face for the 5 landmarks (left eye, right eye, nose
// tip, left and right mouth corner, "left" meaning the image's left in a
// frontal view), in the units of the 112×112 ArcFace crop: x right, y down,
// z away from the camera.
//
// x and y are where SCRFD puts the landmarks on ordinary portrait photos,
// not the ArcFace template: the mean, after 5-point alignment, of the
// largest face's landmarks in the 62 deepface img*.jpg test photos, made
// left-right symmetric. (SCRFD marks the nose lower and the mouth corners
// higher and wider than the template, which would otherwise read as a
// typical portrait looking 25° down.) So "zero pitch" is the average
// portrait, camera at eye level.
// z: the eyes and mouth corners lie near one plane, the nose tip stands 0.40
// of the eye distance in front of it, the ratio of nose-tip protrusion to
// interpupillary distance in anthropometric mean faces (about 25 mm to
// 63 mm).
var poseModel = [5][3]float64{
	{-18.355, 52.63, 0},
	{18.355, 52.63, 0},
	{0, 74.35, -14.7},
	{-16.585, 89.95, -2},
	{16.585, 89.95, -2},
}

// poseModelCentred is poseModel minus its mean, and poseScatterInv the
// inverse of its 3×3 scatter matrix Σ PᵢPᵢᵀ; both are fixed.
var poseModelCentred, poseScatterInv = poseModelPrep()

func poseModelPrep() ([5][3]float64, [3][3]float64) {
	var mean [3]float64
	for _, p := range poseModel {
		for k := range 3 {
			mean[k] += p[k] / 5
		}
	}
	var c [5][3]float64
	var s [3][3]float64
	for i, p := range poseModel {
		for k := range 3 {
			c[i][k] = p[k] - mean[k]
		}
		for a := range 3 {
			for b := range 3 {
				s[a][b] += c[i][a] * c[i][b]
			}
		}
	}
	return c, inv3(s)
}

func inv3(m [3][3]float64) [3][3]float64 {
	a, b, c := m[0][0], m[0][1], m[0][2]
	d, e, f := m[1][0], m[1][1], m[1][2]
	g, h, i := m[2][0], m[2][1], m[2][2]
	det := a*(e*i-f*h) - b*(d*i-f*g) + c*(d*h-e*g)
	return [3][3]float64{
		{(e*i - f*h) / det, (c*h - b*i) / det, (b*f - c*e) / det},
		{(f*g - d*i) / det, (a*i - c*g) / det, (c*d - a*f) / det},
		{(d*h - e*g) / det, (b*g - a*h) / det, (a*e - b*d) / det},
	}
}

// EstimatePose fits the mean face to the 5 landmarks under weak perspective
// (scaled orthographic projection) and returns its rotation as yaw, pitch
// and roll (see Pose for the signs).
//
// The fit: with landmarks pᵢ and model points Pᵢ both centred, the 2×3 map
// A = (Σ pᵢPᵢᵀ)(Σ PᵢPᵢᵀ)⁻¹ is the least-squares projection; its nearest
// scaled pair of orthonormal rows (A Aᵀ)^(-1/2) A gives the first two rows
// of the rotation R, and their cross product the third. R is read as
// Rz(roll)·Ry(θ)·Rx(φ) in image axes (x right, y down, z into the scene),
// with yaw = −θ and pitch = −φ so that the signs read as Pose says.
//
// Landmarks from a detector are noisy and the mean face is not the subject's
// face: expect the sign and rough size to be right (±10° near frontal), not
// a measurement. Degenerate input (all points equal) gives the zero pose.
func EstimatePose(lm [5][2]float32) Pose {
	var mx, my float64
	for _, p := range lm {
		mx += float64(p[0]) / 5
		my += float64(p[1]) / 5
	}
	var b [2][3]float64
	for i, p := range lm {
		u, v := float64(p[0])-mx, float64(p[1])-my
		for k := range 3 {
			b[0][k] += u * poseModelCentred[i][k]
			b[1][k] += v * poseModelCentred[i][k]
		}
	}
	var a [2][3]float64
	for r := range 2 {
		for k := range 3 {
			for j := range 3 {
				a[r][k] += b[r][j] * poseScatterInv[j][k]
			}
		}
	}
	r1, r2, ok := orthonormalRows(a)
	if !ok {
		return Pose{}
	}
	r3 := [3]float64{
		r1[1]*r2[2] - r1[2]*r2[1],
		r1[2]*r2[0] - r1[0]*r2[2],
		r1[0]*r2[1] - r1[1]*r2[0],
	}
	// R = Rz(ψ)·Ry(θ)·Rx(φ): R[2][0] = −sin θ, R[2][1] = cos θ sin φ,
	// R[2][2] = cos θ cos φ, R[0][0] = cos ψ cos θ, R[1][0] = sin ψ cos θ.
	theta := -math.Asin(max(-1, min(1, r3[0])))
	phi := math.Atan2(r3[1], r3[2])
	psi := math.Atan2(r2[0], r1[0])
	const deg = 180 / math.Pi
	return Pose{Yaw: float32(-theta * deg), Pitch: float32(-phi * deg), Roll: float32(psi * deg)}
}

// orthonormalRows returns the orthonormal pair of rows nearest to a's
// (the polar factor (a aᵀ)^(-1/2) a), or false when a is degenerate.
func orthonormalRows(a [2][3]float64) (r1, r2 [3]float64, ok bool) {
	dot := func(x, y [3]float64) float64 { return x[0]*y[0] + x[1]*y[1] + x[2]*y[2] }
	m00, m01, m11 := dot(a[0], a[0]), dot(a[0], a[1]), dot(a[1], a[1])
	det := m00*m11 - m01*m01
	if det <= 1e-12*(m00+m11)*(m00+m11) || m00+m11 == 0 {
		return r1, r2, false
	}
	// sqrt of a 2×2 SPD matrix M: (M + √det·I) / √(tr M + 2√det).
	sd := math.Sqrt(det)
	t := math.Sqrt(m00 + m11 + 2*sd)
	s00, s01, s11 := (m00+sd)/t, m01/t, (m11+sd)/t
	// inverse of the sqrt.
	dd := s00*s11 - s01*s01
	i00, i01, i11 := s11/dd, -s01/dd, s00/dd
	for k := range 3 {
		r1[k] = i00*a[0][k] + i01*a[1][k]
		r2[k] = i01*a[0][k] + i11*a[1][k]
	}
	return r1, r2, true
}
