package store

// SetAppendPerRow is TEMPORARY, for the benchmark comparison.
func SetAppendPerRow(v bool) { appendPerRow = v }
