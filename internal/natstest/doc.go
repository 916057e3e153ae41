// Package natstest starts an in-process nats-server with JetStream for tests.
//
// Every test that talks to NATS gets its own server, listening on a random
// loopback port with its store in t.TempDir(), plus a connected client and a
// [jetstream.JetStream] handle. Everything is shut down in t.Cleanup, so a
// test never shares JetStream state with another one.
//
//	srv := natstest.Start(t)
//	stream, err := srv.JS.CreateStream(ctx, jetstream.StreamConfig{...})
//
// [Server.Restart] stops the server and starts a new one on the same port and
// the same store directory: streams, consumers and messages survive, and the
// client reconnects on its own. Fault tests use it to prove that work is not
// lost across a server restart.
//
// No mocks: this is the real nats-server (v2.15), embedded.
package natstest
