package imaging_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/facestream/facestream/internal/imaging"
)

// TestMain fails the run when any gocv Mat outlives the tests. The count is
// only kept in builds with -tags matprofile (make test-native runs them so).
func TestMain(m *testing.M) {
	code := m.Run()
	if n, ok := imaging.LiveMats(); ok && n != 0 {
		fmt.Fprintf(os.Stderr, "imaging: %d gocv Mats leaked\n", n)
		code = 1
	}
	os.Exit(code)
}
