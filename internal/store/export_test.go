package store

// The index page reads, for the tests of index.go.
var (
	IndexNewest = (*Store).indexNewest
	IndexRange  = (*Store).indexRange
	IndexRemove = (*Store).indexRemove
)
