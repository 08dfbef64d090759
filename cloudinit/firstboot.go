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
// outcome and reports joined or failed; without join it only phones home. The plan
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
