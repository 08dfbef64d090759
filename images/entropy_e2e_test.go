package images_test

import (
	"encoding/hex"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bootyard/bootyard/images/agenttest"
)

// firstTask wraps the fake agent API and notes when the agent first asked for its task:
// the moment it had drivers, a DHCP lease and a route to Bootyard.
type firstTask struct {
	http.Handler
	mu sync.Mutex
	at time.Time
}

func (f *firstTask) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/agent/v1/task" {
		f.mu.Lock()
		if f.at.IsZero() {
			f.at = time.Now()
		}
		f.mu.Unlock()
	}
	f.Handler.ServeHTTP(w, r)
}

func (f *firstTask) when() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at
}

// TestAgentQEMU_ReachesBootyardWithoutAnRNGDevice boots the agent under TCG (no RDRAND)
// twice, with and without virtio-rng: without one the kernel's CRNG takes minutes to be
// seeded, and an agent that waits on entropy (its DHCP transaction IDs once did) never
// reaches Bootyard within the test's deadline. Both boots must install; the times from
// power-on to the first task request are reported, not asserted.
func TestAgentQEMU_ReachesBootyardWithoutAnRNGDevice(t *testing.T) {
	requireQEMU(t)
	dir := t.TempDir()
	k, initramfs := agentInitramfs(t, dir)
	const diskSize = 48 * mib
	img := newTestImage(t, dir, 16*mib)
	image, sum := img.bytes, img.sum

	for _, tt := range []struct {
		name  string
		noRNG bool
	}{{"with virtio-rng", false}, {"without an RNG device", true}} {
		t.Run(tt.name, func(t *testing.T) {
			vm := &agentVM{noRNG: tt.noRNG, kernel: k.Vmlinuz, initramfs: initramfs,
				disk: filepath.Join(t.TempDir(), "disk.img"), dir: t.TempDir()}
			vm.attach(t, "rng", diskSize, 1)
			token := hex.EncodeToString(randomBytes(32))
			api := agenttest.New(token, agenttest.Task{
				Node: "rng-1", Action: "install",
				Image:  &agenttest.Image{Name: "test", URL: "/images/test", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(image)), Format: "raw"},
				CIData: map[string][]byte{"meta-data": []byte("instance-id: rng-1\n"), "user-data": []byte("#cloud-config\nhostname: rng-1\n")},
			}, image)
			seen := &firstTask{Handler: api}
			startServices(t, vm.ns, seen)
			start := time.Now()
			took := vm.boot(t, token, nil)
			rep := api.Report()
			if len(rep.Done) != 1 || len(rep.Failed) != 0 {
				t.Fatalf("done %v, failed %v; agent log:\n%s", rep.Done, rep.Failed, strings.Join(rep.Logs, "\n"))
			}
			for _, l := range rep.Logs {
				if strings.Contains(l, "random number") {
					t.Errorf("the agent waited on entropy: %s", l)
				}
			}
			t.Logf("%s: power-on to first task request %s, to done and reboot %s",
				tt.name, seen.when().Sub(start).Round(100*time.Millisecond), took.Round(time.Second))
		})
	}
}
