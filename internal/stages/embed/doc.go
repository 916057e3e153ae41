// Package embed is the embed stage: for every faces.detected it embeds the
// aligned 112×112 crop of each face with the pack's recognizer and emits
// faces.embedded.
//
// The runner calls Handle from many goroutines at once; their crops meet in
// a Batcher, which runs the recognizer once per batch of up to BatchSize
// crops (waiting at most MaxWait for a partial batch to fill) and hands each
// caller its own vectors. The histogram facestream_embed_batch_size shows
// the batch sizes reached.
package embed
