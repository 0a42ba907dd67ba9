//go:build !(linux && cgo)

package main

// keepFreedHeap does nothing where the C library is not glibc's (see
// malloc_linux.go).
func keepFreedHeap(int) {}
