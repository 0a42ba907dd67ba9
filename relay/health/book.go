package health

import "sync"

// book keeps the latest health of each subject of one kind (tenants,
// components), reports changes of their reasons, and forgets subjects
// gone: what Checker and ComponentChecker share.
type book[K comparable] struct {
	mu       sync.Mutex
	latest   map[K]Health
	onChange []func(old, new Health)
}

// OnChange registers f to be called when a subject's set of reasons
// differs from the one computed before by this process.
func (b *book[K]) OnChange(f func(old, new Health)) { b.onChange = append(b.onChange, f) }

// keep makes h k's latest health, and reports a change of reasons.
func (b *book[K]) keep(k K, h Health) {
	b.mu.Lock()
	if b.latest == nil {
		b.latest = map[K]Health{}
	}
	old, had := b.latest[k]
	b.latest[k] = h
	b.mu.Unlock()
	if had && !sameKinds(old, h) {
		for _, fn := range b.onChange {
			fn(old, h)
		}
	}
}

// Latest returns k's health as last computed.
func (b *book[K]) Latest(k K) (Health, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h, ok := b.latest[k]
	return h, ok
}

// Forget drops k's health (the subject was deleted).
func (b *book[K]) Forget(k K) {
	b.mu.Lock()
	delete(b.latest, k)
	b.mu.Unlock()
}

// retain forgets every subject not in seen: those gone since the last
// full pass.
func (b *book[K]) retain(seen map[K]bool) {
	b.mu.Lock()
	for k := range b.latest {
		if !seen[k] {
			delete(b.latest, k)
		}
	}
	b.mu.Unlock()
}

// each calls f with every subject's latest health under the lock: f must
// be quick (copy what it needs).
func (b *book[K]) each(f func(Health)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range b.latest {
		f(h)
	}
}
