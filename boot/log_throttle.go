package boot

import (
	"sync/atomic"
	"time"
)

// logThrottle lets one log line through per interval. A line any client can cause with
// each packet (a full pool, say) must not let a flood of made-up MACs fill the disk with
// logs; the packet counters keep the totals.
type logThrottle struct {
	next atomic.Int64 // Unix nanoseconds before which lines are held back
}

// allow reports whether a line may be written at now, and if so holds the next back
// until now+every.
func (t *logThrottle) allow(now time.Time, every time.Duration) bool {
	n := t.next.Load()
	if now.UnixNano() < n {
		return false
	}
	return t.next.CompareAndSwap(n, now.Add(every).UnixNano())
}

// exhaustedLogEvery is how often a full pool is logged while it stays full.
const exhaustedLogEvery = 10 * time.Second
