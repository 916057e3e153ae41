package api

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/facestream/facestream/internal/natstest"
)

// TestMain checks that the edge leaves no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, natstest.KnownClientGoroutines())
}
