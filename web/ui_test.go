package web

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/bootyard/bootyard/node"
)

// The browser tests drive Debian's chromium headless through the DevTools protocol
// against the real server and a real bbolt store: what an operator does, with the
// script, dialogs and live updates running.

const chromiumPath = "/usr/bin/chromium"

// newBrowser starts a headless chromium with a fresh profile. Its cleanup runs before
// the server's (cleanups run last-registered first), so open event streams end first.
func newBrowser(t *testing.T, h *uiHarness) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test skipped: %s is missing (apt-get install chromium)", chromiumPath)
	}
	// Not t.TempDir: chromium's helper processes may still be writing the profile for a
	// moment after the browser exits, which t.TempDir's cleanup reports as a failure.
	profile, err := os.MkdirTemp("", "bootyard-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox, // running as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(func(format string, args ...any) {
		// chromium is newer than the pinned protocol bindings: events they cannot decode
		// are noise, not faults of the page.
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "could not unmarshal event") && !strings.Contains(msg, "unhandled node event") {
			t.Log(msg)
		}
	}))
	// One bound for the whole scenario, so a wait for an element that never comes fails
	// the test instead of hanging it.
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		// Close the browser gracefully (chromedp.Cancel waits for it), then kill whatever is left.
		if err := chromedp.Cancel(ctx); err != nil {
			t.Logf("close browser: %v", err)
		}
		cancelTimeout()
		cancelBrowser()
		cancelAlloc()
		h.srv.CloseClientConnections()
		for try := 0; ; try++ {
			err := os.RemoveAll(profile)
			if err == nil {
				break
			}
			if try == 10 {
				t.Logf("browser profile %s left behind: %v", profile, err)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	if err := chromedp.Run(ctx, cdplog.Enable()); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	// A script error or a Content-Security-Policy violation fails the test: the page's
	// enhancement would be silently broken otherwise.
	var mu sync.Mutex
	var problems []string
	chromedp.ListenTarget(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
		case *cdplog.EventEntryAdded:
			// Network entries are the 4xx answers the tests provoke on purpose (a 422 page
			// for a bad MAC); what matters here is script and security-policy errors.
			if ev.Entry.Level == cdplog.LevelError && ev.Entry.Source != cdplog.SourceNetwork {
				msg = "console: " + ev.Entry.Text
			}
		}
		if msg != "" {
			mu.Lock()
			problems = append(problems, msg)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("browser reported %s", p)
		}
	})
	return ctx
}

// artifactDir is where screenshots go: $BOOTYARD_ARTIFACTS, or artifacts/ui at the
// repository root (git-ignored).
func artifactDir(t *testing.T) string {
	dir := os.Getenv("BOOTYARD_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts", "ui")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("no artifact directory %s (%v): screenshots go to a temporary one", dir, err)
		dir = t.TempDir()
	}
	return dir
}

func screenshot(t *testing.T, ctx context.Context, name string, width, height int64) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx,
		chromedp.EmulateViewport(width, height),
		chromedp.FullScreenshot(&png, 100),
		chromedp.EmulateViewport(1280, 900),
	); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path, _ := filepath.Abs(filepath.Join(artifactDir(t), name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func run(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var loc string
		_ = chromedp.Run(ctx, chromedp.Location(&loc))
		t.Fatalf("%s: %v (at %s)", step, err, loc)
	}
}

// browserSignIn opens url, which lands on the login form, signs in with the admin token and
// then runs then on the page it was sent back to.
func browserSignIn(t *testing.T, ctx context.Context, url string, then ...chromedp.Action) {
	t.Helper()
	run(t, ctx, "sign in", append([]chromedp.Action{
		chromedp.Navigate(url),
		chromedp.WaitVisible("#password", chromedp.ByID),
		chromedp.SendKeys("#password", testToken, chromedp.ByID),
		chromedp.SendKeys("#password", kb.Enter, chromedp.ByID),
	}, then...)...)
}

func jsTrue(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	var ok bool
	run(t, ctx, what, chromedp.Evaluate(expr, &ok))
	if !ok {
		t.Fatalf("%s: %s is false", what, expr)
	}
}

func TestUI_OperatorImportsInspectsDeletesAndSignsOut(t *testing.T) {
	h := newUI(t, uiOptions{})
	setToken(t, h.st, "https://10.20.0.10:6443")
	// A small inventory around the node under test, so the screenshots show a real table.
	h.importNode(`{"macs":["52:54:00:00:01:01"],"role":"server","name":"cp-1"}`)
	h.walk("cp-1", node.StateProvisioning, node.StateInstalled, node.StateActive)
	h.importNode(`{"macs":["52:54:00:00:01:02"],"role":"server","name":"cp-2","ip":"10.20.0.12/24"}`)
	h.walk("cp-2", node.StateProvisioning)
	h.importNode(`{"macs":["52:54:00:00:02:01"],"role":"worker","name":"w-1"}`)
	h.walk("w-1", node.StateProvisioning, node.StateFailed)
	if err := h.st.RecordBoot(t.Context(), node.MAC{0x52, 0x54, 0, 0xde, 0xad, 0x01}, node.BootInfo{Firmware: "uefi", Arch: 7}); err != nil {
		t.Fatal(err)
	}
	ctx := newBrowser(t, h)
	base := h.srv.URL

	// Pages are closed to a visitor: the browser lands on the login form.
	var loc string
	run(t, ctx, "open the nodes page signed out",
		chromedp.Navigate(base+"/ui/nodes"),
		chromedp.WaitVisible("#password", chromedp.ByID),
		chromedp.Location(&loc))
	if !strings.HasPrefix(loc, base+"/login") {
		t.Fatalf("signed-out visit landed on %s", loc)
	}
	run(t, ctx, "sign in with the admin token",
		chromedp.SendKeys("#password", testToken, chromedp.ByID),
		chromedp.SendKeys("#password", kb.Enter, chromedp.ByID),
		chromedp.WaitVisible("#import-open", chromedp.ByID),
		chromedp.Location(&loc))
	if loc != base+"/ui/nodes" {
		t.Fatalf("after sign-in the browser is at %s, want the nodes page it asked for", loc)
	}

	// The import dialog opens in place, takes focus, closes with Escape and gives the
	// focus back to the button that opened it.
	run(t, ctx, "open the import dialog",
		chromedp.Click("#import-open", chromedp.ByID),
		chromedp.WaitVisible("#import-mac", chromedp.ByID))
	jsTrue(t, ctx, "dialog is modal and focused", `document.getElementById("import-dialog").open && document.activeElement.id === "import-mac"`)
	run(t, ctx, "Escape closes the dialog",
		chromedp.KeyEvent(kb.Escape),
		chromedp.WaitNotVisible("#import-mac", chromedp.ByID))
	jsTrue(t, ctx, "focus returns to the opener", `document.activeElement.id === "import-open"`)

	// A discovered machine's Import button opens the same dialog with its MAC filled in.
	run(t, ctx, "import a discovered machine",
		chromedp.Click("#import-node-525400dead01", chromedp.ByID),
		chromedp.WaitVisible("#import-mac", chromedp.ByID))
	jsTrue(t, ctx, "the MAC is prefilled", `document.getElementById("import-mac").value === "52:54:00:de:ad:01"`)
	run(t, ctx, "cancel it", chromedp.Click(`#import-dialog button[formmethod="dialog"]`, chromedp.ByQuery),
		chromedp.WaitNotVisible("#import-mac", chromedp.ByID))

	// A bad MAC, with the advanced fields filled: the error sits beside the MAC field.
	run(t, ctx, "import with a bad MAC",
		chromedp.Click("#import-open", chromedp.ByID),
		chromedp.WaitVisible("#import-mac", chromedp.ByID),
		chromedp.Click(`input[name="role"][value="worker"]`, chromedp.ByQuery),
		chromedp.SendKeys("#import-mac", "52:54:00:zz:00:31", chromedp.ByID),
		chromedp.Click("#import-advanced summary", chromedp.ByQuery),
		chromedp.WaitVisible("#import-name", chromedp.ByID),
		chromedp.SendKeys("#import-name", "gpu-1", chromedp.ByID),
		chromedp.SendKeys("#import-ip", "10.20.0.31/24", chromedp.ByID),
		chromedp.SendKeys("#import-gateway", "10.20.0.1", chromedp.ByID),
		chromedp.SendKeys("#import-labels", "gpu=a100", chromedp.ByID),
		chromedp.SendKeys("#import-taints", "gpu=true:Sometimes", chromedp.ByID),
		chromedp.Click("#import-submit", chromedp.ByID),
		chromedp.WaitVisible("#import-mac-error", chromedp.ByID))
	var msg string
	run(t, ctx, "read the MAC error", chromedp.Text("#import-mac-error", &msg, chromedp.ByID))
	if !strings.Contains(msg, "not a hardware address") {
		t.Errorf("MAC error %q", msg)
	}
	jsTrue(t, ctx, "the dialog stays open, modal, on the error",
		`document.getElementById("import-dialog").open && document.activeElement.id === "import-mac" && document.getElementById("import-name").value === "gpu-1"`)
	screenshot(t, ctx, "import-dialog-errors.png", 1280, 900)

	// Fix the MAC: now the taint is at fault.
	run(t, ctx, "import with a bad taint",
		chromedp.Clear("#import-mac", chromedp.ByID),
		chromedp.SendKeys("#import-mac", "52:54:00:aa:00:31", chromedp.ByID),
		chromedp.Click("#import-submit", chromedp.ByID),
		chromedp.WaitVisible("#import-taints-error", chromedp.ByID),
		chromedp.Text("#import-taints-error", &msg, chromedp.ByID))
	if !strings.Contains(msg, "NoSchedule") {
		t.Errorf("taint error %q", msg)
	}
	if _, err := h.st.GetNode(t.Context(), "gpu-1"); err == nil {
		t.Fatal("gpu-1 was imported despite the errors")
	}
	run(t, ctx, "fix the taint",
		chromedp.Clear("#import-taints", chromedp.ByID),
		chromedp.SendKeys("#import-taints", "gpu=true:NoSchedule", chromedp.ByID))
	screenshot(t, ctx, "import-dialog.png", 1280, 900)
	screenshot(t, ctx, "import-dialog-phone.png", 390, 844)
	run(t, ctx, "import for real",
		chromedp.Click("#import-submit", chromedp.ByID),
		chromedp.WaitVisible("#imported-title", chromedp.ByID))
	screenshot(t, ctx, "nodes.png", 1280, 900)
	screenshot(t, ctx, "nodes-phone.png", 390, 844)

	// The new node is listed as registered, and its join is shown with the token masked
	// until the reveal button is pressed.
	var row, join string
	run(t, ctx, "read the new row and the masked join",
		chromedp.Text("#node-gpu-1", &row, chromedp.ByID),
		chromedp.Text("#join-gpu-1", &join, chromedp.ByID))
	if !strings.Contains(row, "registered") || !strings.Contains(row, "52:54:00:aa:00:31") || !strings.Contains(row, "10.20.0.31/24") {
		t.Errorf("row of gpu-1: %q", row)
	}
	if strings.Contains(join, pageJoinToken) || !strings.Contains(join, tokenMask) || !strings.Contains(join, "nodeName: gpu-1") {
		t.Errorf("join before reveal: %q", join)
	}
	run(t, ctx, "reveal the token",
		chromedp.Click(`form[data-reveal="join-gpu-1"] button`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("join-gpu-1").textContent.includes(`+jsString(pageJoinToken)+`)`, nil,
			chromedp.WithPollingTimeout(10*time.Second)))
	n, err := h.st.GetNode(t.Context(), "gpu-1")
	if err != nil {
		t.Fatal(err)
	}
	if n.Labels["gpu"] != "a100" || n.Gateway.String() != "10.20.0.1" || len(n.Taints) != 1 {
		t.Errorf("gpu-1 as stored: %+v", n)
	}

	// Ages tick in the page without the table being replaced (which would drop a text
	// selection); a real change replaces it: a machine that starts installing shows up so.
	run(t, ctx, "ages tick in place",
		chromedp.Evaluate(`window.gpuRow = document.getElementById("node-gpu-1");
			window.gpuAge = window.gpuRow.querySelector("time[data-ago]").textContent; true`, nil),
		chromedp.Poll(`document.getElementById("node-gpu-1").querySelector("time[data-ago]").textContent !== window.gpuAge`, nil,
			chromedp.WithPollingTimeout(15*time.Second)))
	jsTrue(t, ctx, "the row was not replaced while its age ticked", `document.getElementById("node-gpu-1") === window.gpuRow`)
	h.walk("gpu-1", node.StateProvisioning)
	run(t, ctx, "the table updates live",
		chromedp.Poll(`document.getElementById("node-gpu-1").textContent.includes("provisioning")`, nil,
			chromedp.WithPollingTimeout(15*time.Second)))

	// The node page, with the installer log arriving while it is open.
	run(t, ctx, "open the node page",
		chromedp.Click(`a[href="/ui/nodes/gpu-1"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#node-state", chromedp.ByID))
	if err := h.st.AppendEvents(t.Context(), node.Event{Time: time.Now().UTC(), Node: "gpu-1", Type: node.EventLog,
		Reason: "Started llmos.service", Source: "agent"}); err != nil {
		t.Fatal(err)
	}
	h.walk("gpu-1", node.StateInstalled)
	run(t, ctx, "log and state update live",
		chromedp.Poll(`document.getElementById("log").textContent.includes("Started llmos.service") &&
			document.getElementById("node-state").textContent === "installed"`, nil,
			chromedp.WithPollingTimeout(15*time.Second)))
	screenshot(t, ctx, "node.png", 1280, 900)
	screenshot(t, ctx, "node-phone.png", 390, 844)

	// Delete: the wrong name is refused, the right one sends the node to the wipe.
	run(t, ctx, "delete with a wrong name",
		chromedp.Click("#delete-open", chromedp.ByID),
		chromedp.WaitVisible("#delete-confirm", chromedp.ByID),
		chromedp.SendKeys("#delete-confirm", "gpu-2", chromedp.ByID),
		chromedp.Click("#delete-submit", chromedp.ByID),
		chromedp.WaitVisible("#delete-confirm-error", chromedp.ByID))
	screenshot(t, ctx, "delete-dialog.png", 1280, 900)
	if got := h.state("gpu-1"); got != node.StateInstalled {
		t.Fatalf("after a refused delete gpu-1 is %s", got)
	}
	var state string
	run(t, ctx, "delete with the right name",
		chromedp.Clear("#delete-confirm", chromedp.ByID),
		chromedp.SendKeys("#delete-confirm", "gpu-1", chromedp.ByID),
		chromedp.Click("#delete-submit", chromedp.ByID),
		chromedp.WaitNotPresent("#delete-confirm-error", chromedp.ByID),
		// The page after the redirect may still be arriving: the summary is parsed before
		// the dialog at its end, so look the dialog up without assuming it is there yet.
		chromedp.Poll(`document.getElementById("node-state") && document.getElementById("delete-dialog") && !document.getElementById("delete-dialog").open`, nil),
		chromedp.Text("#node-state", &state, chromedp.ByID))
	if got := h.state("gpu-1"); got != node.StateWiping || state != "wiping" {
		t.Fatalf("after delete gpu-1 is %s (page says %q), want wiping", got, state)
	}

	// The cluster page: settings with the token masked, and the fault-tolerance table.
	var token string
	run(t, ctx, "open the cluster page",
		chromedp.Click(`a[href="/ui/cluster"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#cluster-token", chromedp.ByID),
		chromedp.Text("#cluster-token", &token, chromedp.ByID))
	if token != tokenMask {
		t.Errorf("cluster token shown as %q", token)
	}
	screenshot(t, ctx, "cluster.png", 1280, 900)

	// Sign out: every page is closed again.
	run(t, ctx, "sign out",
		chromedp.Click(`form.logout button`, chromedp.ByQuery),
		chromedp.WaitVisible("#password", chromedp.ByID))
	for _, path := range []string{"/ui/nodes", "/ui/nodes/gpu-1", "/ui/cluster"} {
		run(t, ctx, "visit "+path+" signed out",
			chromedp.Navigate(base+path),
			chromedp.WaitVisible("#password", chromedp.ByID),
			chromedp.Location(&loc))
		if !strings.HasPrefix(loc, base+"/login") {
			t.Errorf("%s after sign-out shows %s", path, loc)
		}
	}
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
