package main

import (
	"sync"

	"github.com/bootyard/bootyard/node"
)

// updateHooks fans the store's one OnUpdate callback out to the services that care;
// services register as they start, while writers may already be running.
type updateHooks struct {
	mu    sync.RWMutex
	hooks []func(before, after node.Node)
}

func (h *updateHooks) add(fn func(before, after node.Node)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hooks = append(h.hooks, fn)
}

func (h *updateHooks) run(before, after node.Node) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, fn := range h.hooks {
		fn(before, after)
	}
}
