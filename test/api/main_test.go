package api_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the pipeline, the edge and their connections leave
// no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
