package cloudinit

import (
	"bytes"
	"fmt"

	"sigs.k8s.io/yaml"

	"github.com/bootyard/bootyard/node"
)

// restartDropIn keeps the join unit retrying: LLMOS fails for good on a transient error
// (an image pull, a server still electing its etcd leader), so systemd restarts it, at
// most burst starts within the script's join deadline; after that the unit stays failed
// ("no more restarts pending"), which the first-boot script reports. The script writes
// it only where systemd accepts Restart= on a oneshot unit (minRestartSystemd).
func restartDropIn(deadlineSeconds, burst int) string {
	return fmt.Sprintf(`# Written by Bootyard: retry the join a bounded number of times.
[Unit]
StartLimitIntervalSec=%ds
StartLimitBurst=%d

[Service]
Restart=on-failure
RestartSec=30s
`, deadlineSeconds, burst)
}

// minRestartSystemd is the first systemd that accepts Restart=on-failure on a
// Type=oneshot unit (v244 NEWS); older ones refuse to load such a unit.
const minRestartSystemd = 244

type writeFile struct {
	Path        string `json:"path"`
	Permissions string `json:"permissions"`
	Owner       string `json:"owner"`
	Content     string `json:"content"`
}

// UserData renders user-data (#cloud-config). With join it carries the distribution's
// config file (the only place the token appears) and the first-boot script that waits,
// installs, waits for the join's outcome and phones home; runcmd only starts
// that script, so no setting and no token appears in runcmd. The operator's extra
// cloud-config is merged in (see mergeCloudConfig).
func (r *Renderer) UserData(n node.Node, s node.ClusterSettings, join bool) ([]byte, error) {
	cfg := map[string]any{
		"hostname":          n.Name,
		"preserve_hostname": false,
	}
	if len(s.SSHAuthorizedKeys) > 0 {
		cfg["ssh_authorized_keys"] = s.SSHAuthorizedKeys
	}
	var files []any
	var plan *JoinPlan
	if join {
		p, err := r.join.Plan(n, s, s.Token.Reveal())
		if err != nil {
			return nil, fmt.Errorf("user-data for %s: %w", n.Name, err)
		}
		plan = &p
		for _, f := range p.Files {
			files = append(files, writeFile{Path: f.Path, Permissions: f.Permissions, Owner: "root:root", Content: f.Content})
		}
	}
	script, err := r.FirstBootScript(n, s, plan)
	if err != nil {
		return nil, err
	}
	files = append(files, writeFile{Path: firstBootPath, Permissions: "0700", Owner: "root:root", Content: string(script)})
	cfg["write_files"] = files
	cfg["runcmd"] = []any{[]string{"sh", firstBootPath}}

	if s.ExtraCloudConfig != "" {
		var extra map[string]any
		if err := yaml.Unmarshal([]byte(s.ExtraCloudConfig), &extra); err != nil {
			return nil, fmt.Errorf("user-data for %s: extra cloud-config: %w: %v", n.Name, node.ErrInvalid, err)
		}
		cfg = mergeCloudConfig(cfg, extra)
	}
	body, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("user-data for %s: %w", n.Name, err)
	}
	var b bytes.Buffer
	b.Grow(len(body) + 16)
	b.WriteString("#cloud-config\n")
	b.Write(body)
	return b.Bytes(), nil
}
