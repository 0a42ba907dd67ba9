//go:build !unix

package store

// freeBytes cannot tell here: readiness relies on its probe write alone.
func freeBytes(string) (uint64, bool) { return 0, false }
