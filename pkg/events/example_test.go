package events_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// exampleNATS starts an in-process JetStream server with facestream's
// streams, standing in for the facestream deployment, and returns a
// connection to it and a function that stops both.
func exampleNATS() (*nats.Conn, jetstream.JetStream, func()) {
	dir, err := os.MkdirTemp("", "facestream-example")
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		log.Fatal("nats server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := fsnats.Apply(context.Background(), js, fsnats.WithMemoryStorage()); err != nil {
		log.Fatal(err)
	}
	return nc, js, func() {
		nc.Close()
		srv.Shutdown()
		srv.WaitForShutdown()
		_ = os.RemoveAll(dir)
	}
}

// Any NATS client can submit an image: a CloudEvent in binary mode is just
// headers and the image bytes. Nothing from facestream is needed to publish.
func Example_publishFromAnyNATSClient() {
	_, js, stop := exampleNATS()
	defer stop()
	ctx := context.Background()

	jpeg := []byte("\xff\xd8\xff\xe0...the bytes of photo.jpg...\xff\xd9")
	msg := nats.NewMsg("facestream.image.submitted")
	msg.Header.Set("ce-specversion", "1.0")
	msg.Header.Set("ce-id", "5c1e1d2a-9b7e-4c1f-a0f4-2d6a7c3e9b10")
	msg.Header.Set("ce-source", "/cameras/lobby")
	msg.Header.Set("ce-type", "io.facestream.image.submitted.v1")
	msg.Header.Set("ce-time", "2026-01-02T15:04:05Z")
	msg.Header.Set("ce-subject", "lobby-2026-01-02-150405")
	msg.Header.Set("ce-tenant", "acme")
	msg.Header.Set("ce-options", `{"pack":"buffalo_l","max_faces":20}`)
	msg.Header.Set("content-type", "image/jpeg")
	msg.Header.Set("Nats-Msg-Id", "5c1e1d2a-9b7e-4c1f-a0f4-2d6a7c3e9b10")
	msg.Data = jpeg

	ack, err := js.PublishMsg(ctx, msg) // returns once JetStream stored it
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored in", ack.Stream)

	// Publishing the same event again (a retry) is harmless.
	ack, err = js.PublishMsg(ctx, msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("duplicate:", ack.Duplicate)

	// This is what the ingest stage reads.
	stream, err := js.Stream(ctx, "FACESTREAM_WORK")
	if err != nil {
		log.Fatal(err)
	}
	raw, err := stream.GetMsg(ctx, ack.Sequence)
	if err != nil {
		log.Fatal(err)
	}
	e, err := events.Decode(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	if err != nil {
		log.Fatal(err)
	}
	sub, err := events.ParseImageSubmitted(e)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sub.ImageID, sub.Tenant, sub.Options.Pack, sub.ContentType, len(sub.Image), "bytes")
	// Output:
	// stored in FACESTREAM_WORK
	// duplicate: true
	// lobby-2026-01-02-150405 acme buffalo_l image/jpeg 34 bytes
}

// The same with this package: NewImageSubmitted builds the event and the
// Publisher fills in id, source and time and waits for the PubAck.
func ExamplePublisher_Publish() {
	_, js, stop := exampleNATS()
	defer stop()

	pub, err := events.NewPublisher(js, events.WithSource("/uploads/web"))
	if err != nil {
		log.Fatal(err)
	}
	e, err := events.NewImageSubmitted(events.Submission{
		ImageID:     "upload-42",
		Tenant:      "acme",
		ContentType: "image/png",
		Image:       []byte("\x89PNG...the bytes of a picture..."),
	})
	if err != nil {
		log.Fatal(err)
	}
	ack, err := pub.Publish(context.Background(), e)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ack.Stream, ack.Sequence, ack.Duplicate)
	// Output: FACESTREAM_WORK 1 false
}

// A stage is a Handler; the Runner does the rest. This one answers every
// accepted image with an empty detection.
func ExampleRunner() {
	_, js, stop := exampleNATS()
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	consumer, err := js.Consumer(ctx, fsnats.StreamWork, fsnats.ConsumerDetect)
	if err != nil {
		log.Fatal(err)
	}
	detect := events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		var in events.ImageAccepted
		if err := d.Decode(&in); err != nil {
			return nil, err // malformed: permanent, dead-lettered
		}
		out, err := events.New(in.Image.ImageID, &events.FacesDetected{
			Image: in.Image, Pack: "buffalo_s", Detector: "det_500m", Faces: []events.Face{},
		})
		return []events.Event{out}, err
	})
	runner, err := events.NewRunner(js, consumer, detect, events.RunnerConfig{Stage: events.StageDetect})
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()

	// Feed it one image.accepted and wait for the faces.detected.
	in, err := events.New("img-7", &events.ImageAccepted{Image: events.ImageInfo{ImageID: "img-7", Format: "jpeg", Width: 640, Height: 480}})
	if err != nil {
		log.Fatal(err)
	}
	in.SetTenant("acme")
	pub, err := events.NewPublisher(js)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := pub.Publish(ctx, in); err != nil {
		log.Fatal(err)
	}
	embed, err := js.Consumer(ctx, fsnats.StreamWork, fsnats.ConsumerEmbed)
	if err != nil {
		log.Fatal(err)
	}
	m, err := embed.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		log.Fatal(err)
	}
	out, err := events.Decode(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Subject(), out.ImageID(), out.Tenant(), out.CloudEvent.Source())

	cancel()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// Output: facestream.faces.detected img-7 acme /facestream/detect
}
