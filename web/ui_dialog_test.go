package web

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestUI_ServerDrawnDialogGivesFocusBackToItsOpener: a dialog the server drew open (a
// click before the script ran, a link with ?import=1, a form sent back with errors) was
// opened by no click the script saw. Escape must still give focus to the page's Import
// button, not leave it on the body.
func TestUI_ServerDrawnDialogGivesFocusBackToItsOpener(t *testing.T) {
	h := newUI(t, uiOptions{})
	ctx := newBrowser(t, h)
	base := h.srv.URL
	browserSignIn(t, ctx, base+"/ui/nodes?import=1&mac=52:54:00:00:03:01",
		chromedp.WaitVisible("#import-mac", chromedp.ByID),
		// The script has made the drawn dialog modal and focused its first field.
		chromedp.Poll(`document.getElementById("import-dialog").matches(":modal") && document.activeElement.id === "import-mac"`, nil))
	jsTrue(t, ctx, "the MAC from the URL is filled in", `document.getElementById("import-mac").value === "52:54:00:00:03:01"`)
	run(t, ctx, "Escape closes the dialog",
		chromedp.KeyEvent(kb.Escape),
		chromedp.WaitNotVisible("#import-mac", chromedp.ByID))
	jsTrue(t, ctx, "focus goes to the Import button", `document.activeElement.id === "import-open"`)

	// The same after a form sent back with its errors.
	run(t, ctx, "import with a bad MAC",
		chromedp.Click("#import-open", chromedp.ByID),
		chromedp.WaitVisible("#import-mac", chromedp.ByID),
		chromedp.SendKeys("#import-mac", "not-a-mac", chromedp.ByID),
		chromedp.Click("#import-submit", chromedp.ByID),
		chromedp.WaitVisible("#import-mac-error", chromedp.ByID),
		chromedp.Poll(`document.getElementById("import-dialog").matches(":modal") && document.activeElement.id === "import-mac"`, nil),
		chromedp.KeyEvent(kb.Escape),
		chromedp.WaitNotVisible("#import-mac", chromedp.ByID))
	jsTrue(t, ctx, "focus goes to the Import button after the error page", `document.activeElement.id === "import-open"`)
}
