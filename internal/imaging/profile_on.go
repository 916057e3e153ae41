//go:build matprofile

package imaging

import "gocv.io/x/gocv"

// LiveMats reports how many gocv Mats are currently allocated and not
// closed, process-wide. ok is false unless the binary was built with
// -tags matprofile (gocv only counts Mats then). Tests call it in TestMain
// to prove that native memory is released.
func LiveMats() (n int, ok bool) { return gocv.MatProfile.Count(), true }
