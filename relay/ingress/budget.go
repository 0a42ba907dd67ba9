package ingress

import "sync"

// byteBudget hands out bytes from a fixed total without waiting.
type byteBudget struct {
	mu   sync.Mutex
	left int64
}

func newByteBudget(total int64) *byteBudget { return &byteBudget{left: total} }

// take takes n bytes (MaxBodyBytes when n is unknown, below 0) and
// returns their release, or false when fewer are left.
func (b *byteBudget) take(n int64) (release func(), ok bool) {
	if n < 0 || n > MaxBodyBytes {
		n = MaxBodyBytes
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.left {
		return nil, false
	}
	b.left -= n
	return sync.OnceFunc(func() {
		b.mu.Lock()
		b.left += n
		b.mu.Unlock()
	}), true
}
