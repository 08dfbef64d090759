package cloudinit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/bootyard/bootyard/node"
)

// The NoCloud file names, exactly as cloud-init requests them from a seed.
const (
	FileMetaData      = "meta-data"
	FileUserData      = "user-data"
	FileVendorData    = "vendor-data"
	FileNetworkConfig = "network-config"
)

// CallbackKeyHeader carries CallbackKey on the node's phone-home and join-turn calls;
// a header rather than a query parameter so access logs never record it.
const CallbackKeyHeader = "X-Bootyard-Key"

// FileNames lists the NoCloud files in the order a seed holds them.
var FileNames = []string{FileMetaData, FileUserData, FileVendorData, FileNetworkConfig}

// Config configures a Renderer. Only AdvertiseURL is required.
type Config struct {
	// AdvertiseURL is Bootyard's HTTP base URL as the nodes reach it
	// (http://10.20.0.2:8080); node-side callbacks go to AdvertiseURL/nocloud/<mac>/.
	AdvertiseURL string
	// Join renders the distribution's join; nil means LLMOS.
	Join JoinRenderer
	// CallbackSecret keys the per-node value that authenticates phone-home and join-turn
	// calls. Nil derives it from the cluster token, which is secret and stable across
	// restarts, so a node mid-join can still phone home after Bootyard restarts.
	CallbackSecret []byte
	// WaitLimit bounds how long a joiner waits for its server and its turn before it
	// gives up and reports; 0 means 45 minutes (a rack of servers cold-booting).
	WaitLimit time.Duration
	// WaitFirstDelay and WaitMaxDelay shape the backoff between tries; 0 means 5s and 60s.
	WaitFirstDelay, WaitMaxDelay time.Duration
	// JoinLimit bounds how long the first-boot script waits, after the installer, for the
	// distribution to finish the join; 0 means 45 minutes (a k3s server pulling images
	// and joining etcd on a slow link).
	JoinLimit time.Duration
	// JoinRetries is how often the script restarts a failed join unit where systemd
	// cannot (before 244); 0 means 5.
	JoinRetries int
}

// Renderer renders NoCloud files. It is safe for concurrent use; templates are parsed
// once, in NewRenderer.
type Renderer struct {
	advertise      string // without trailing slash
	join           JoinRenderer
	callbackSecret []byte
	waitLimit      int // seconds; the node-side script does integer arithmetic
	firstDelay     int
	maxDelay       int
	joinLimit      int
	joinRetries    int
	script         *template.Template
}

// NewRenderer checks cfg and parses the templates.
func NewRenderer(cfg Config) (*Renderer, error) {
	u, err := url.Parse(cfg.AdvertiseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("cloudinit: advertise URL %q: %w: want http(s)://host[:port]", cfg.AdvertiseURL, node.ErrInvalid)
	}
	r := &Renderer{
		advertise:      strings.TrimRight(cfg.AdvertiseURL, "/"),
		join:           cfg.Join,
		callbackSecret: cfg.CallbackSecret,
		waitLimit:      seconds(cfg.WaitLimit, 45*time.Minute),
		firstDelay:     seconds(cfg.WaitFirstDelay, 5*time.Second),
		maxDelay:       seconds(cfg.WaitMaxDelay, time.Minute),
		joinLimit:      seconds(cfg.JoinLimit, 45*time.Minute),
		joinRetries:    cfg.JoinRetries,
	}
	if r.joinRetries <= 0 {
		r.joinRetries = 5
	}
	if r.join == nil {
		r.join = LLMOS{}
	}
	if r.script, err = parseScript(); err != nil {
		return nil, err
	}
	return r, nil
}

func seconds(d, def time.Duration) int {
	if d <= 0 {
		d = def
	}
	if s := int(d / time.Second); s > 0 {
		return s
	}
	return 1
}

// Distribution names the join renderer in use.
func (r *Renderer) Distribution() string { return r.join.Distribution() }

// Files renders the four NoCloud files for n. With join false the user-data carries
// hostname, SSH keys and the phone-home call only: what a deleted or wiped machine gets,
// so it comes back as a plain OS that never rejoins.
func (r *Renderer) Files(n node.Node, s node.ClusterSettings, join bool) (map[string][]byte, error) {
	ud, err := r.UserData(n, s, join)
	if err != nil {
		return nil, err
	}
	nc, err := r.NetworkConfig(n)
	if err != nil {
		return nil, err
	}
	md, err := r.MetaData(n)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		FileMetaData:      md,
		FileUserData:      ud,
		FileVendorData:    r.VendorData(),
		FileNetworkConfig: nc,
	}, nil
}

// InstanceID changes with every provisioning round, so cloud-init runs its first-boot
// modules again after a reinstall.
func InstanceID(n node.Node) string {
	return "bootyard-" + n.Name + "-" + strconv.Itoa(n.Generation)
}

// CallbackKey is the unguessable per-node, per-generation value the node-side script
// sends back with phone-home and join-turn calls. It is derived, not stored: HMAC of the
// node name and generation, so it changes with each provisioning round.
func (r *Renderer) CallbackKey(n node.Node, s node.ClusterSettings) string {
	secret := r.callbackSecret
	if secret == nil {
		secret = []byte("bootyard-callback\x00" + s.Token.Reveal())
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(n.Name))
	mac.Write([]byte{0})
	mac.Write([]byte(strconv.Itoa(n.Generation)))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// CallbackURL is the base of the node's NoCloud path, to which the node-side script
// appends phone-home and join-turn.
func (r *Renderer) CallbackURL(n node.Node) string {
	return r.advertise + "/nocloud/" + n.PrimaryMAC().String() + "/"
}
