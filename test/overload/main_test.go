package overload_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/facestream/facestream/internal/natstest"
)

// TestMain checks that the pipeline, the edge and the load generator leave
// no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, natstest.KnownClientGoroutines())
}
