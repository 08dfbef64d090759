package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/netns"
	"github.com/bootyard/bootyard/node"
)

// debianImageScript builds the real-OS test's image; its sha256 keys the cached image.
const debianImageScript = "testdata/debian-image.sh"

// debianImage returns a real Debian 12 disk image (its own cloud-init, GRUB for BIOS and
// UEFI), built by testdata/debian-image.sh on first use and cached under .cache keyed by
// the script's hash, so `make test` builds it once.
func debianImage(t *testing.T) string {
	t.Helper()
	recipe, err := os.ReadFile(debianImageScript)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(recipe)
	dir, err := filepath.Abs(filepath.Join("..", "..", ".cache", "debian-image"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, hex.EncodeToString(sum[:8])+".raw")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	for _, tool := range []string{"debootstrap", "mkfs.ext4", "mkfs.vfat", "mcopy", "sgdisk", "python3", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make test installs debootstrap, e2fsprogs, dosfstools, mtools, gdisk): the real-OS image cannot be built", tool)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// One build at a time across test processes: a second waits and then finds the image.
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(out); err == nil {
		return out
	}
	mirror := aptMirror()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	script, _ := filepath.Abs(debianImageScript)
	b, err := exec.CommandContext(ctx, "sh", script, out, mirror).CombinedOutput()
	if err != nil {
		t.Fatalf("build the Debian image from %s: %v\n%s", mirror, err, tail(string(b), 4000))
	}
	t.Logf("built the Debian 12 image %s from %s in %s", filepath.Base(out), mirror, time.Since(start).Round(time.Second))
	return out
}

// aptMirror is the Debian mirror apt uses on this machine, so debootstrap fetches from
// the same place (a proxy or a local mirror where there is one).
func aptMirror() string {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	files = append([]string{"/etc/apt/sources.list"}, files...)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			var uri string
			switch {
			case len(fields) >= 3 && fields[0] == "deb":
				uri = fields[1]
				if strings.HasPrefix(uri, "[") { // deb [options] URI suite
					for i, f := range fields {
						if strings.HasSuffix(f, "]") && i+1 < len(fields) {
							uri = fields[i+1]
							break
						}
					}
				}
			case len(fields) >= 2 && fields[0] == "URIs:":
				uri = fields[1]
			}
			if uri != "" && !strings.Contains(uri, "security") {
				fh.Close()
				return uri
			}
		}
		fh.Close()
	}
	return "http://deb.debian.org/debian"
}

// standInLLMOS plays the LLMOS side of a join inside the lab namespace: the k3s server's
// /ping and the cluster-info endpoint the first-boot script waits for, and an installer
// that behaves like LLMOS's install.sh. That installer writes a llmos.service oneshot and
// returns at once (systemctl restart --no-block llmos); the unit's bootstrap then waits
// for the test to open its gate and writes /var/lib/llmos/bootstrapped, or fails.
type standInLLMOS struct {
	serverURL  string // https://10.77.0.1:6443
	installURL string
	mu         sync.Mutex
	seen       map[string]time.Time // installer-ran, bootstrap-started, bootstrapped, bootstrap-failed
	gate       chan struct{}
}

const standInAddr = "10.77.0.1"

func startStandInLLMOS(t *testing.T, ns *netns.NS, failBootstrap bool) *standInLLMOS {
	t.Helper()
	s := &standInLLMOS{serverURL: "https://" + standInAddr + ":6443", installURL: "http://" + standInAddr + ":8090/install.sh",
		seen: make(map[string]time.Time), gate: make(chan struct{})}
	listen := func(port string) net.Listener {
		var ln net.Listener
		if err := ns.Do(func() error {
			var err error
			ln, err = net.Listen("tcp", net.JoinHostPort(standInAddr, port))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return ln
	}
	serve := func(port string, tls bool, h http.Handler) {
		srv := httptest.NewUnstartedServer(h)
		srv.Listener.Close()
		srv.Listener = listen(port)
		if tls {
			srv.StartTLS()
		} else {
			srv.Start()
		}
		t.Cleanup(srv.Close)
	}
	serve("6443", true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ping" {
			io.WriteString(w, "pong")
			return
		}
		http.NotFound(w, r)
	}))
	serve("8443", true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "{}")
	}))
	bootstrap := "mkdir -p /var/lib/llmos && touch /var/lib/llmos/bootstrapped && report bootstrapped"
	if failBootstrap {
		bootstrap = "echo 'level=fatal msg=\"cluster-info: 401 Unauthorized\"' >&2; report bootstrap-failed; exit 1"
	}
	installer := strings.NewReplacer("@BASE@", "http://"+standInAddr+":8090", "@BOOTSTRAP@", bootstrap).Replace(standInInstaller)
	serve("8090", false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/install.sh":
			io.WriteString(w, installer)
		case r.URL.Path == "/gate":
			// The unit's bootstrap asks until the test opens the gate.
			select {
			case <-s.gate:
				io.WriteString(w, "go")
			default:
				http.Error(w, "wait", http.StatusServiceUnavailable)
			}
		case strings.HasPrefix(r.URL.Path, "/report/"):
			s.mu.Lock()
			what := strings.TrimPrefix(r.URL.Path, "/report/")
			if _, ok := s.seen[what]; !ok {
				s.seen[what] = time.Now()
			}
			s.mu.Unlock()
		default:
			http.NotFound(w, r)
		}
	}))
	return s
}

// standInInstaller is the stand-in for LLMOS's install.sh, shaped like its ending.
const standInInstaller = `#!/bin/sh
set -e
report() { curl -fsS -m 5 -X POST "@BASE@/report/$1" || true; }
report installer-ran
cat >/usr/local/bin/llmos-bootstrap <<'EOF'
#!/bin/sh
report() { curl -fsS -m 5 -X POST "@BASE@/report/$1" || true; }
report bootstrap-started
echo "llmos bootstrap: waiting for the cluster"
until curl -fsS -m 5 "@BASE@/gate" >/dev/null 2>&1; do sleep 2; done
@BOOTSTRAP@
EOF
chmod 0755 /usr/local/bin/llmos-bootstrap
cat >/etc/systemd/system/llmos.service <<'EOF'
[Unit]
Description=LLMOS bootstrap (Bootyard test stand-in)
Wants=network-online.target
After=network-online.target
[Service]
Type=oneshot
ExecStart=/usr/local/bin/llmos-bootstrap
[Install]
WantedBy=multi-user.target
EOF
systemctl daemon-reload
systemctl enable llmos.service
systemctl restart --no-block llmos.service
echo "LLMOS installed; the bootstrap runs in llmos.service"
`

func (s *standInLLMOS) at(what string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.seen[what]
	return at, ok
}

func (s *standInLLMOS) open() { close(s.gate) }

// nodeEvents lists a node's events as "type: reason" lines, for assertions and logs.
func (l *installLab) nodeEvents(t *testing.T, name string) []node.Event {
	t.Helper()
	var events []node.Event
	if code := l.api(t, "GET", "/api/v1/nodes/"+name+"/events", "", &events); code != 200 {
		t.Fatalf("events of %s: %d", name, code)
	}
	return events
}

// waitEvent waits for the first event whose reason contains want and returns it.
func (l *installLab) waitEvent(t *testing.T, name, want string, limit time.Duration) node.Event {
	t.Helper()
	var found node.Event
	waitFor(t, limit, fmt.Sprintf("node %s to have an event %q", name, want), func() bool {
		for _, e := range l.nodeEvents(t, name) {
			if strings.Contains(e.Reason, want) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// TestRealOS_InstalledMachineBootsItsDiskThroughBootyardAndJoins boots as a fleet does:
// the network first in the boot order, a real Debian 12 image with its own cloud-init.
// The machine PXE-boots, the agent installs, the machine reboots, Bootyard answers
// "boot the local disk" (BIOS: sanboot of drive 0x80; UEFI: the local-boot loader that
// chainloads the disk's GRUB), the installed OS boots, cloud-init runs the first-boot
// script, which runs a stand-in LLMOS installer and follows the join to its end: joined
// once LLMOS's stamp exists (the server's turn held until then), or failed with the
// join unit's journal tail.
func TestRealOS_InstalledMachineBootsItsDiskThroughBootyardAndJoins(t *testing.T) {
	if testing.Short() {
		t.Skip("installs and boots a real Debian under TCG: skipped with -short")
	}
	requireFirmware(t)
	img := debianImage(t)
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	agentData := t.TempDir()
	buildAgentFiles(t, agentData)

	tests := []struct {
		name          string
		mac           string
		uefi          bool
		role          node.Role
		failBootstrap bool
		// secureBoot: OVMF with Microsoft's keys, Secure Boot enforced, the site's UEFI
		// loader shim: the signed chain installs, and the image's own signed shim and GRUB
		// boot it (issue 16).
		secureBoot bool
	}{
		// A server that joins: its turn is held until LLMOS's stamp, then joined.
		{"uefi", "52:54:00:77:02:02", true, node.RoleServer, false, false},
		// A worker whose bootstrap fails: failed, with the unit's journal tail.
		{"bios", "52:54:00:77:02:01", false, node.RoleWorker, true, false},
		// A worker that joins, with Secure Boot on from power-on to joined.
		{"uefi-secureboot", "52:54:00:77:02:03", true, node.RoleWorker, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// TCG runs a guest on one host thread: the two firmwares boot side by side.
			t.Parallel()
			data := t.TempDir()
			if err := os.CopyFS(filepath.Join(data, "agent"), os.DirFS(filepath.Join(agentData, "agent"))); err != nil {
				t.Fatal(err)
			}
			lab := startInstallLab(t, bin, data)
			llmos := startStandInLLMOS(t, lab.ns, tc.failBootstrap)
			// A hard link: the server reads image files only from its images directory.
			if err := os.Link(img, lab.imagePath("debian12.raw")); err != nil {
				t.Fatal(err)
			}
			if code := lab.api(t, "POST", "/api/v1/images", `{"name":"debian12","file":"`+lab.imagePath("debian12.raw")+`","default":true}`, nil); code/100 != 2 {
				t.Fatalf("add image: %d", code)
			}
			loader := node.LoaderIPXE
			if tc.secureBoot {
				loader = node.LoaderShim
			}
			settings := fmt.Sprintf(`{"serverURL":%q,"token":"bootyard-realos-test-token","installURL":%q,"uefiLoader":%q}`,
				llmos.serverURL, llmos.installURL, loader)
			if code := lab.api(t, "PATCH", "/api/v1/cluster", settings, nil); code/100 != 2 {
				t.Fatalf("cluster settings: %d", code)
			}
			if tc.role == node.RoleServer {
				// The first server imported creates the cluster; this one joins it, so it waits
				// for the server and for its turn like a second control-plane machine.
				if code := lab.api(t, "POST", "/api/v1/nodes", `{"macs":["52:54:00:77:02:0f"],"role":"server","name":"os-init"}`, nil); code != 201 {
					t.Fatalf("import the cluster-init server: %d", code)
				}
			}
			name := "os-" + tc.name
			if code := lab.api(t, "POST", "/api/v1/nodes", `{"macs":["`+tc.mac+`"],"role":"`+string(tc.role)+`","name":"`+name+`"}`, nil); code != 201 {
				t.Fatalf("import: %d", code)
			}
			diskPath := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(diskPath, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(diskPath, fi.Size()+192<<20); err != nil {
				t.Fatal(err)
			}

			// The machine reboots by itself after the install, as a real one does.
			vm := startVM(t, lab.ns, tc.mac, vmOptions{uefi: tc.uefi, secureBoot: tc.secureBoot, disk: diskPath, limit: 25 * time.Minute})
			lab.waitState(t, name, node.StateInstalled, 12*time.Minute)
			installed := time.Since(vm.start)
			t.Logf("%s: power-on to installed (agent) in %s (TCG, %d MiB image)", tc.name, installed.Round(time.Second), fi.Size()>>20)

			// The reboot: the firmware boots the network first, and Bootyard answers local boot.
			localAnswer := "iPXE script served: localboot"
			if tc.secureBoot {
				localAnswer = "GRUB config served: localboot"
			}
			local := lab.waitEvent(t, name, localAnswer, 8*time.Minute)
			t.Logf("%s: local-boot script served %s after power-on", tc.name, local.Time.Sub(vm.start).Round(time.Second))

			// The installed OS boots and cloud-init runs the first-boot script: the installer
			// is fetched and run, and the script phones home.
			waitFor(t, 12*time.Minute, "the installed OS to run the stand-in LLMOS installer", func() bool {
				_, ok := llmos.at("installer-ran")
				return ok
			})
			ran, _ := llmos.at("installer-ran")
			t.Logf("%s: installed OS booted and ran the installer %s after power-on (%s after the local-boot answer)",
				tc.name, ran.Sub(vm.start).Round(time.Second), ran.Sub(local.Time).Round(time.Second))
			serial, _ := os.ReadFile(vm.serial)
			if tc.uefi && !strings.Contains(string(serial), "Bootyard: starting") {
				t.Errorf("the serial console never shows the local-boot loader starting the disk's loader:\n%s", tail(string(serial), 3000))
			}
			if tc.secureBoot {
				if n := lab.node(t, name); n.SecureBoot == nil || !*n.SecureBoot {
					t.Errorf("the agent reported Secure Boot %v, want on", n.SecureBoot)
				}
				// The installed kernel, started after the local-boot answer by the image's own
				// shim and GRUB, says so too.
				after := string(serial)[max(0, strings.Index(string(serial), "Bootyard: starting")):]
				if !strings.Contains(after, "Kernel is locked down from EFI Secure Boot") {
					t.Errorf("the installed system's kernel does not report Secure Boot lockdown:\n%s", tail(after, 3000))
				}
			}

			// The installer returned at once (restart --no-block): the script reports joining
			// and, for a server, keeps its join turn while llmos.service bootstraps.
			lab.waitState(t, name, node.StateJoining, 5*time.Minute)
			waitFor(t, 5*time.Minute, "the stand-in llmos.service to start its bootstrap", func() bool {
				_, ok := llmos.at("bootstrap-started")
				return ok
			})
			if st := lab.node(t, name).State; st != node.StateJoining {
				t.Fatalf("node is %s while llmos.service is still bootstrapping, want joining", st)
			}
			if tc.role == node.RoleServer {
				if holder := lab.joinTurnHolder(t); holder != name {
					t.Errorf("join turn held by %q while %s bootstraps, want %s (the turn must last until the stamp)", holder, name, name)
				}
			}

			llmos.open()
			if !tc.failBootstrap {
				lab.waitState(t, name, node.StateJoined, 8*time.Minute)
				joined := lab.waitEvent(t, name, "phone-home: joined:", time.Minute)
				stamp, ok := llmos.at("bootstrapped")
				if !ok || joined.Time.Before(stamp) {
					t.Errorf("joined reported at %s, before llmos.service wrote the stamp (%v, %v)", joined.Time, stamp, ok)
				}
				t.Logf("%s: power-on to joined in %s (stamp written %s after power-on)", tc.name,
					joined.Time.Sub(vm.start).Round(time.Second), stamp.Sub(vm.start).Round(time.Second))
				if holder := lab.joinTurnHolder(t); holder != "" {
					t.Errorf("join turn still held by %q after the join", holder)
				}
				return
			}
			// A bootstrap that fails (here: cluster-info 401) is retried by systemd within its
			// start limit, then reported as failed with the unit's journal tail.
			var n node.Node
			waitFor(t, 12*time.Minute, "node "+name+" to be failed", func() bool {
				n = lab.node(t, name)
				return n.State == node.StateFailed
			})
			if !strings.Contains(n.StateReason, "llmos.service failed") {
				t.Errorf("failed node's reason %q does not name llmos.service", n.StateReason)
			}
			var tailHas401 bool
			for _, e := range lab.nodeEvents(t, name) {
				if e.Type == node.EventLog && e.Source == "join" && strings.Contains(e.Reason, "401 Unauthorized") {
					tailHas401 = true
				}
			}
			if !tailHas401 {
				t.Errorf("the failure's journal tail lacks the bootstrap's error; events:\n%s", eventLines(lab.nodeEvents(t, name)))
			}
			t.Logf("%s: power-on to failed (bootstrap failing, retried by systemd) in %s", tc.name, time.Since(vm.start).Round(time.Second))
		})
	}
}

// joinTurnHolder is the server the cluster view says holds the join turn, or "".
func (l *installLab) joinTurnHolder(t *testing.T) string {
	t.Helper()
	var v struct {
		JoinTurn *struct {
			Node string `json:"node"`
		} `json:"joinTurn"`
	}
	if code := l.api(t, "GET", "/api/v1/cluster", "", &v); code != 200 {
		t.Fatalf("GET cluster: %d", code)
	}
	if v.JoinTurn == nil {
		return ""
	}
	return v.JoinTurn.Node
}

func eventLines(events []node.Event) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "%s %s %s→%s %s\n", e.Type, e.Source, e.From, e.To, e.Reason)
	}
	return b.String()
}
