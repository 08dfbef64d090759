package cloudinit

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/bootyard/bootyard/node"
)

// LLMOS paths and names, from the LLMOS installer: it installs a oneshot llmos.service
// that runs `llmos bootstrap`, which reads this file.
const (
	llmosConfigPath = "/etc/llmos/config.yaml"
	llmosUnit       = "llmos.service"
	// llmosBootstrapped is written by `llmos bootstrap` when the node has joined; the
	// installer itself ends with `systemctl restart --no-block llmos`, long before that.
	llmosBootstrapped = "/var/lib/llmos/bootstrapped"
	// llmosClusterInfoPort is where joiners fetch /v1-cluster/cluster-info with the token.
	llmosClusterInfoPort = 8443
)

// LLMOS renders joins for LLMOS, the default distribution.
type LLMOS struct {
	// ClusterInfoPort overrides 8443, the port joiners fetch cluster-info from; tests
	// point it at a loopback server.
	ClusterInfoPort int
}

// llmosConfig is /etc/llmos/config.yaml. Field names are the LLMOS config keys.
type llmosConfig struct {
	Role            string   `json:"role"`
	Server          string   `json:"server,omitempty"`
	Token           string   `json:"token,omitempty"`
	NodeName        string   `json:"nodeName"`
	InternalAddress string   `json:"internalAddress,omitempty"`
	Labels          []string `json:"labels,omitempty"`
	Taints          []string `json:"taints,omitempty"`
}

// Distribution implements JoinRenderer.
func (LLMOS) Distribution() string { return "llmos" }

// Plan implements JoinRenderer.
//
// Roles: the first server is `cluster-init` and carries the token, so the cluster is
// created with the token Bootyard knows and needs no server URL; other servers are
// `server` and workers `agent` (the LLMOS --role flag knows only server and agent, but
// the config file also takes cluster-init). nodeName is the Bootyard name, which is
// unique, rather than the hostname LLMOS would otherwise derive. LLMOS adds the
// llmos.ai/managed=true label itself; we never list it, so it can never be dropped.
func (l LLMOS) Plan(n node.Node, s node.ClusterSettings, token string) (JoinPlan, error) {
	cfg := llmosConfig{NodeName: n.Name, Token: token, Labels: node.LabelList(n.Labels)}
	switch {
	case n.Role == node.RoleServer && n.ClusterInit:
		cfg.Role = "cluster-init"
	case n.Role == node.RoleServer:
		cfg.Role = "server"
	case n.Role == node.RoleWorker:
		cfg.Role = "agent"
	default:
		return JoinPlan{}, fmt.Errorf("llmos join for %s: role %q: %w", n.Name, n.Role, node.ErrInvalid)
	}
	if token == "" {
		return JoinPlan{}, fmt.Errorf("llmos join for %s: no cluster token set: %w", n.Name, node.ErrInvalid)
	}
	plan := JoinPlan{
		Unit:       llmosUnit,
		DoneStamp:  llmosBootstrapped,
		InstallURL: s.EffectiveInstallURL(),
		InstallEnv: s.InstallEnv,
		OneAtATime: n.Role == node.RoleServer,
		LogHint:    "journalctl -u llmos -f",
	}
	if cfg.Role != "cluster-init" {
		if s.ServerURL == "" {
			return JoinPlan{}, fmt.Errorf("llmos join for %s: no server URL set (bootyard cluster set --server): %w", n.Name, node.ErrInvalid)
		}
		// The API stores it normalised; one stored before that may still end in "/",
		// and k3s never answers "pong" on //ping.
		server := strings.TrimRight(s.ServerURL, "/")
		u, err := url.Parse(server)
		if err != nil || u.Hostname() == "" {
			return JoinPlan{}, fmt.Errorf("llmos join for %s: server URL %q: %w", n.Name, s.ServerURL, node.ErrInvalid)
		}
		cfg.Server = server
		plan.PingURL = server + "/ping"
		plan.PingAnswer = "pong"
		port := l.ClusterInfoPort
		if port == 0 {
			port = llmosClusterInfoPort
		}
		plan.ReachURLs = []string{"https://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(port)) + "/v1-cluster/cluster-info"}
	}
	if n.IP.IsValid() {
		cfg.InternalAddress = n.IP.Addr().String()
	}
	for _, t := range n.Taints {
		cfg.Taints = append(cfg.Taints, t.String())
	}
	body, err := yaml.Marshal(cfg)
	if err != nil {
		return JoinPlan{}, fmt.Errorf("llmos config for %s: %w", n.Name, err)
	}
	plan.Files = []File{{Path: llmosConfigPath, Permissions: "0600", Content: string(body), Secret: true}}
	return plan, nil
}
