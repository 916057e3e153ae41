package onnx

// LiveNativeValues reports how many native tensor wrappers are alive: the
// leak test checks that runs leave none behind.
func LiveNativeValues() int64 { return liveValues.Load() }
