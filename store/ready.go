package store

// Ready reports whether the store can answer from what it holds: a bbolt file reads its
// own pages, so it is ready once open. serve gates /readyz on it; a backend that serves
// from a cache of a remote API says false until that cache has synced.
func (s *Store) Ready() bool { return true }
