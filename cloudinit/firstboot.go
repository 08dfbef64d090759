package cloudinit

import (
	"bytes"
	_ "embed"
	"fmt"
	"sort"
	"strings"
	"text/template"

	"github.com/bootyard/bootyard/node"
)

// firstBootPath is where user-data writes the first-boot script that runcmd runs.
const firstBootPath = "/usr/local/lib/bootyard/firstboot.sh"

//go:embed firstboot.sh.tmpl
var firstBootTemplate string

type firstBootData struct {
	Node, InstanceID, Callback, Key string
	Join                            bool
	Plan                            JoinPlan
	Env                             []string // sorted K=V for the installer
	WaitLimit, FirstDelay, MaxDelay int
	JoinLimit, JoinRetries          int // seconds; Bootyard's own restarts of the join unit
	MinRestartSystemd               int
	RestartDropIn                   string
}

func parseScript() (*template.Template, error) {
	t, err := template.New("firstboot.sh").Funcs(template.FuncMap{"q": shellQuote}).Parse(firstBootTemplate)
	if err != nil {
		return nil, fmt.Errorf("cloudinit: parse first-boot script: %w", err)
	}
	return t, nil
}

// FirstBootScript renders the POSIX sh script runcmd runs on the node: with join, it
// waits (bounded backoff) for the server and, for servers, for its turn, runs the
// installer with no flags, reports joining, waits (bounded) for the distribution's own
// outcome and reports joined or failed; without join it only phones home.
//
// Its contract with the machine, for anyone standing in for LLMOS (tests, another
// distribution): the installer it downloads must queue JoinPlan.Unit and may return at
// once; the unit then writes JoinPlan.DoneStamp (joined) or ends failed (`systemctl
// is-failed`; its `journalctl -u` tail is reported). It phones home POST
// <callback>phone-home with status installed (no join), joining, joined or failed, a
// reason, and for failed a log. BOOTYARD_ROOT prefixes the paths it writes and reads
// (the drop-in, the stamp) and BOOTYARD_CONSOLE replaces /dev/console; both are for tests. The plan
// comes from the join renderer; the script never contains the token.
func (r *Renderer) FirstBootScript(n node.Node, s node.ClusterSettings, plan *JoinPlan) ([]byte, error) {
	d := firstBootData{
		Node:       n.Name,
		InstanceID: InstanceID(n),
		Callback:   r.CallbackURL(n),
		Key:        r.CallbackKey(n, s),
		WaitLimit:  r.waitLimit,
		FirstDelay: r.firstDelay,
		MaxDelay:   r.maxDelay,
		JoinLimit:  r.joinLimit,
		// Bootyard's restarts stand in for the drop-in's on old systemd.
		JoinRetries:       r.joinRetries,
		MinRestartSystemd: minRestartSystemd,
		// The installer's own start plus JoinRetries restarts, as on old systemd.
		RestartDropIn: restartDropIn(r.joinLimit, r.joinRetries+1),
	}
	if plan != nil {
		d.Join, d.Plan = true, *plan
		for k, v := range plan.InstallEnv {
			d.Env = append(d.Env, k+"="+v)
		}
		sort.Strings(d.Env)
	}
	var b bytes.Buffer
	if err := r.script.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("first-boot script for %s: %w", n.Name, err)
	}
	return b.Bytes(), nil
}

// shellQuote makes s one POSIX sh word, whatever it contains.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
