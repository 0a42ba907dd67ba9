package store_test

import "github.com/wxrelay/wxrelay/store/cmalloc"

// The tests and benchmarks run with the allocator as wxrelay serve sets it
// by default (--malloc-keep): the claim's figures depend on it.
func init() { cmalloc.KeepFreedHeap(4 << 20) }
