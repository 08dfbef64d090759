package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PeakRSS is the peak resident set size of process pid (VmHWM in /proc/PID/status), in
// bytes: what a server under test needed at its worst.
func PeakRSS(pid int) (int64, error) {
	st, err := readStatus(pid)
	if err != nil {
		return 0, err
	}
	hwm, ok := st["VmHWM"]
	if !ok {
		return 0, fmt.Errorf("peak rss of %d: no VmHWM line", pid)
	}
	return hwm, nil
}

// Memory is what a process's resident set is made of, in bytes. Anon is its own memory
// (heap, stacks, runtime); File is pages of mapped files (the executable's code and
// read-only data, a memory-mapped store), clean and shared with the page cache, which
// the kernel can drop and read back; VmHWM counts both.
type Memory struct {
	RSS, Anon, File, HWM int64
}

func (m Memory) String() string {
	const mib = 1 << 20
	return fmt.Sprintf("RSS %.1f MiB (anonymous %.1f, file-backed %.1f), peak RSS %.1f MiB",
		float64(m.RSS)/mib, float64(m.Anon)/mib, float64(m.File)/mib, float64(m.HWM)/mib)
}

// ReadMemory reads pid's resident set from /proc/PID/status.
func ReadMemory(pid int) (Memory, error) {
	st, err := readStatus(pid)
	if err != nil {
		return Memory{}, err
	}
	return Memory{RSS: st["VmRSS"], Anon: st["RssAnon"], File: st["RssFile"] + st["RssShmem"], HWM: st["VmHWM"]}, nil
}

// WatchMemory samples pid's memory every interval until the returned stop is called,
// which returns the largest of each figure seen (the peaks need not coincide): VmHWM
// alone cannot tell a server's own growth from its executable's pages.
func WatchMemory(pid int, interval time.Duration) (stop func() Memory) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu   sync.Mutex
		peak Memory
		wg   sync.WaitGroup
	)
	sample := func() {
		m, err := ReadMemory(pid)
		if err != nil {
			return
		}
		mu.Lock()
		peak = Memory{RSS: max(peak.RSS, m.RSS), Anon: max(peak.Anon, m.Anon), File: max(peak.File, m.File), HWM: max(peak.HWM, m.HWM)}
		mu.Unlock()
	}
	wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			sample()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return func() Memory {
		cancel()
		wg.Wait()
		sample()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// CPUTime is the CPU time pid has used so far, user and system (utime + stime in
// /proc/PID/stat): on a loaded machine a server's CPU per unit of work varies far less
// than its throughput.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	// The command name is in parentheses and may hold spaces: fields count after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu time of %d: no command name in %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time of %d: short stat line", pid)
	}
	// After ")": state(0) ... utime(11) stime(12), in clock ticks; Linux's USER_HZ is 100.
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu time of %d: %q: %w", pid, v, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// readStatus returns the kB-valued lines of /proc/PID/status, in bytes.
func readStatus(pid int) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("memory of %d: %w", pid, err)
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), ":")
		v, kb := strings.CutSuffix(strings.TrimSpace(v), " kB")
		if !ok || !kb {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("memory of %d: %s %q: %w", pid, name, v, err)
		}
		out[name] = n << 10
	}
	return out, sc.Err()
}
