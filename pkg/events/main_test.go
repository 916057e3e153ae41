package events_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/facestream/facestream/internal/natstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, natstest.KnownClientGoroutines())
}
