package cloudinit

import "github.com/bootyard/bootyard/node"

// JoinRenderer knows how one distribution joins a machine to the cluster: which config
// files its installer reads, where the installer lives, and what a joiner must wait for.
// Renderers are pure functions of their input; the caller decides whether token is the
// real value or a mask.
type JoinRenderer interface {
	// Distribution names the renderer ("llmos").
	Distribution() string
	// Plan describes the join of n with settings s; token is written wherever the
	// distribution expects the cluster token.
	Plan(n node.Node, s node.ClusterSettings, token string) (JoinPlan, error)
}

// JoinPlan is the distribution-neutral description of one node's join, from which the
// user-data and the node-side join script are rendered.
type JoinPlan struct {
	// Files are written by cloud-init's write_files before anything runs. Files with
	// Secret set hold the token and are the only place it appears.
	Files []File
	// Unit is the systemd unit that performs the join; it is retried (a Restart=on-failure
	// drop-in where systemd accepts one, else the first-boot script restarts it) because
	// it gives up for good when its server is late.
	Unit string
	// DoneStamp is the file the distribution writes once its join has finished. The
	// installer only queues the join, so the first-boot script waits for this file (or
	// Unit failing) before it reports joined (or failed). Empty: the installer's return
	// is the outcome. DoneStamp needs Unit.
	DoneStamp string
	// InstallURL is the installer script, run with no arguments so no setting (and no
	// token) ends up in the unit's ExecStart.
	InstallURL string
	// InstallEnv is the installer's environment (version, mirror, proxy).
	InstallEnv map[string]string
	// PingURL must answer PingAnswer before the join starts; empty for the node that
	// starts the cluster.
	PingURL    string
	PingAnswer string
	// ReachURLs must answer HTTP at all (any status) before the join starts: endpoints
	// the installer calls that do not exist until the server is up.
	ReachURLs []string
	// OneAtATime asks Bootyard for a turn before joining, because the distribution's
	// servers must join one by one.
	OneAtATime bool
	// LogHint tells the operator where to look when the join fails.
	LogHint string
}

// File is one write_files entry.
type File struct {
	Path        string
	Permissions string // octal, e.g. "0600"
	Content     string
	Secret      bool // holds the token
}
