package natstest

import "go.uber.org/goleak"

// KnownClientGoroutines is the goleak option for tests that use JetStream's
// object store or key-value buckets. It ignores exactly one goroutine of
// nats.go v1.55.0 that can outlive a closed connection through no fault of
// the caller: the first async publish (the object store's chunk writes) starts
// jetStream.resetPendingAcksOnReconnect, which reads the publisher's status
// channel under a lock; when the connection closes before it gets there, the
// channel is already nil and the goroutine blocks on it forever. Seen as
// "chan receive (nil chan)" at jetstream/publish.go:570.
func KnownClientGoroutines() goleak.Option {
	return goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect")
}
