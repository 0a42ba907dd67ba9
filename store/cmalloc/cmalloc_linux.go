//go:build linux && cgo

// Package cmalloc tunes the C library's allocator for SQLite's pattern of
// use. Nothing happens on import: a program (wxrelay serve, behind
// --malloc-keep) or a benchmark that wants the tuning calls KeepFreedHeap.
package cmalloc

/*
#include <malloc.h>

static void wxrelay_keep_freed_heap(int bytes) {
#if defined(M_TRIM_THRESHOLD) && defined(M_MMAP_THRESHOLD)
	mallopt(M_TRIM_THRESHOLD, bytes);
	mallopt(M_MMAP_THRESHOLD, bytes);
#endif
}
*/
import "C"

// KeepFreedHeap has glibc keep bytes of freed C heap for reuse instead of
// handing it back to the kernel (--malloc-keep).
//
// SQLite builds a temporary b-tree, with a page cache of its own, for each
// IN list, materialised CTE, ORDER BY and RETURNING of a statement, and
// frees it when the statement ends: the claim of due events makes about
// seven. glibc returned that memory to the kernel at once (the heaps of
// the threads that cgo calls run on are trimmed at 128 KiB), so every
// statement faulted its page caches in afresh, page by page: 150 page
// faults, about half the CPU of a claim. Keeping 4 MiB, a few statements'
// worth, ends that. The mmap threshold moves with it, as glibc stops
// raising it by itself once the trim threshold is set. Other C libraries
// lack these settings and keep their behaviour.
//
// It is the program's to set, not the store package's: a setting of the
// whole process's C library is no business of a package others import.
func KeepFreedHeap(bytes int) { C.wxrelay_keep_freed_heap(C.int(bytes)) }
