// Package attrs is the attrs stage: for every faces.embedded it estimates
// each face's age and gender and expression (from the crops cut by the
// detect stage), its head pose (from the five landmarks) and its quality
// (sharpness and brightness of the aligned crop, box size, detection score,
// pose; usable or the first failed rule), and emits faces.analyzed. The crop
// sets stay behind: faces.analyzed lists only their object-store refs, for
// the aggregate stage to delete.
//
// Handler implements events.Handler and is safe for concurrent use.
package attrs
