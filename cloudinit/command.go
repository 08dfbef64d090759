package cloudinit

import (
	"fmt"
	"sort"
	"strings"

	"github.com/bootyard/bootyard/node"
)

// tokenMask stands in for the token wherever a join is shown rather than delivered.
const tokenMask = "[redacted]"

// JoinCommand is the human-readable join of n, for `bootyard node join-command` and the
// web page: the config file the node receives and the installer command it runs. The
// token and the installer environment's values (proxy passwords) are masked unless
// reveal is set; callers that reveal them are responsible for showing them only to an
// admin.
func (r *Renderer) JoinCommand(n node.Node, s node.ClusterSettings, reveal bool) (string, error) {
	if !reveal {
		s = s.Redacted(tokenMask)
	}
	plan, err := r.join.Plan(n, s, s.Token.Reveal())
	if err != nil {
		return "", fmt.Errorf("join command for %s: %w", n.Name, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s join for node %s (%s)\n", r.join.Distribution(), n.Name, InstanceID(n))
	for _, f := range plan.Files {
		fmt.Fprintf(&b, "# write %s (mode %s):\n%s", f.Path, f.Permissions, f.Content)
		if !strings.HasSuffix(f.Content, "\n") {
			b.WriteByte('\n')
		}
	}
	b.WriteString("# then run the installer with no flags (flags would end up in plain text in the unit's ExecStart):\n")
	env := make([]string, 0, len(plan.InstallEnv))
	for k, v := range plan.InstallEnv {
		env = append(env, k+"="+shellQuote(v))
	}
	sort.Strings(env)
	fmt.Fprintf(&b, "curl -sfL %s | ", shellQuote(plan.InstallURL))
	for _, e := range env {
		b.WriteString(e + " ")
	}
	b.WriteString("sh -s -\n")
	if plan.LogHint != "" {
		fmt.Fprintf(&b, "# logs: %s\n", plan.LogHint)
	}
	return b.String(), nil
}
