package face

import (
	"math"
	"testing"
)

// projectPose renders the pose model under a known rotation
// Rz(roll)·Ry(−yaw)·Rx(−pitch), scale and offset, as a detector would see it.
func projectPose(yaw, pitch, roll, scale, dx, dy float64) [5][2]float32 {
	r := func(d float64) float64 { return d * math.Pi / 180 }
	th, ph, ps := r(-yaw), r(-pitch), r(roll)
	rx := [3][3]float64{{1, 0, 0}, {0, math.Cos(ph), -math.Sin(ph)}, {0, math.Sin(ph), math.Cos(ph)}}
	ry := [3][3]float64{{math.Cos(th), 0, math.Sin(th)}, {0, 1, 0}, {-math.Sin(th), 0, math.Cos(th)}}
	rz := [3][3]float64{{math.Cos(ps), -math.Sin(ps), 0}, {math.Sin(ps), math.Cos(ps), 0}, {0, 0, 1}}
	mul := func(a, b [3][3]float64) (c [3][3]float64) {
		for i := range 3 {
			for j := range 3 {
				for k := range 3 {
					c[i][j] += a[i][k] * b[k][j]
				}
			}
		}
		return c
	}
	R := mul(rz, mul(ry, rx))
	var lm [5][2]float32
	for i, p := range poseModel {
		for row := range 2 {
			v := R[row][0]*p[0] + R[row][1]*p[1] + R[row][2]*p[2]
			off := dx
			if row == 1 {
				off = dy
			}
			lm[i][row] = float32(scale*v + off)
		}
	}
	return lm
}

func TestEstimatePoseRoundTrip(t *testing.T) {
	cases := []struct{ yaw, pitch, roll float64 }{
		{0, 0, 0}, {30, 0, 0}, {-30, 0, 0}, {0, 20, 0}, {0, -20, 0}, {0, 0, 25}, {0, 0, -25},
		{40, -15, 10}, {-60, 25, -35}, {15, 30, 80},
	}
	for _, c := range cases {
		for _, scale := range []float64{0.5, 3} {
			lm := projectPose(c.yaw, c.pitch, c.roll, scale, 300, 200)
			got := EstimatePose(lm)
			if math.Abs(float64(got.Yaw)-c.yaw) > 0.01 || math.Abs(float64(got.Pitch)-c.pitch) > 0.01 || math.Abs(float64(got.Roll)-c.roll) > 0.01 {
				t.Errorf("pose %+v at scale %g: got %+v", c, scale, got)
			}
		}
	}
}

// TestEstimatePoseSigns checks the documented convention on hand-moved
// landmarks (the frontal layout, one feature displaced).
func TestEstimatePoseSigns(t *testing.T) {
	var tpl [5][2]float32
	for i, p := range poseModel {
		tpl[i] = [2]float32{float32(56 + p[0]), float32(p[1])}
	}
	if p := EstimatePose(tpl); absDeg(p.Yaw) > 0.01 || absDeg(p.Pitch) > 0.01 || absDeg(p.Roll) > 0.01 {
		t.Errorf("frontal layout: %+v, want 0", p)
	}
	moved := func(dx, dy float32) [5][2]float32 { m := tpl; m[2][0] += dx; m[2][1] += dy; return m }
	if p := EstimatePose(moved(8, 0)); p.Yaw < 10 {
		t.Errorf("nose towards the image's right: yaw %v, want > 10", p.Yaw)
	}
	if p := EstimatePose(moved(-8, 0)); p.Yaw > -10 {
		t.Errorf("nose towards the image's left: yaw %v, want < -10", p.Yaw)
	}
	if p := EstimatePose(moved(0, -6)); p.Pitch < 10 {
		t.Errorf("nose raised: pitch %v, want > 10", p.Pitch)
	}
	if p := EstimatePose(moved(0, 6)); p.Pitch > -10 {
		t.Errorf("nose lowered: pitch %v, want < -10", p.Pitch)
	}
	// The whole face turned 15° clockwise on screen about its centre.
	var tilted [5][2]float32
	sin, cos := math.Sincos(15 * math.Pi / 180)
	for i, p := range tpl {
		x, y := float64(p[0])-56, float64(p[1])-72
		tilted[i] = [2]float32{float32(56 + x*cos - y*sin), float32(72 + x*sin + y*cos)}
	}
	if p := EstimatePose(tilted); math.Abs(float64(p.Roll)-15) > 1 || p.Yaw*p.Yaw+p.Pitch*p.Pitch > 4 {
		t.Errorf("face turned 15° clockwise: %+v, want roll 15", p)
	}
	if p := EstimatePose([5][2]float32{}); p != (Pose{}) {
		t.Errorf("degenerate landmarks: %+v, want zero pose", p)
	}
}
