//go:build !(linux && cgo)

package cmalloc

// KeepFreedHeap does nothing where the C library is not glibc's (see
// cmalloc_linux.go).
func KeepFreedHeap(int) {}
