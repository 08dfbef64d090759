package web

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bootyard/bootyard/boot"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// MetricSources are read at scrape time (the pointer is kept, so services started after
// NewMetrics can fill it in before the server serves), so the packet and request paths pay nothing
// for metrics beyond the atomic counters they keep anyway. Nil sources are skipped.
type MetricSources struct {
	DHCP      func() boot.DHCPStats
	DHCPPool  int // addresses in the DHCP ranges, for leases free
	TFTP      func() boot.TFTPStats
	NodeCount func(ctx context.Context) (map[node.State]int, error)
	// Bounds counts what the store's limits evicted (discovered nodes, history entries).
	Bounds func() store.BoundStats
}

// Metrics is Bootyard's Prometheus registry: /metrics.
type Metrics struct {
	reg *prometheus.Registry
	// Scripts counts iPXE scripts served, by the node state they were chosen for.
	Scripts *prometheus.CounterVec
	// NoCloud counts NoCloud requests by outcome: served or refused.
	NoCloud *prometheus.CounterVec
	install prometheus.Histogram
	wipe    prometheus.Histogram
}

// NewMetrics registers every Bootyard metric.
func NewMetrics(src *MetricSources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		Scripts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootyard_ipxe_scripts_total", Help: "iPXE scripts served, by the node state that chose them.",
		}, []string{"state"}),
		NoCloud: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootyard_nocloud_requests_total", Help: "NoCloud requests by outcome (served, refused).",
		}, []string{"outcome"}),
		// Installs take minutes (image streaming), wipes up to hours (full overwrite).
		install: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bootyard_install_duration_seconds", Help: "Time from provisioning to installed.",
			Buckets: prometheus.ExponentialBuckets(15, 2, 10),
		}),
		wipe: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bootyard_wipe_duration_seconds", Help: "Time from wiping to deleted.",
			Buckets: prometheus.ExponentialBuckets(15, 2, 12),
		}),
	}
	m.reg.MustRegister(m.Scripts, m.NoCloud, m.install, m.wipe, &sourceCollector{src: src})
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ObserveTransition records install and wipe durations from a node's state change: the
// store calls it after each committed update with the node before and after.
func (m *Metrics) ObserveTransition(before, after node.Node) {
	if before.State == after.State || before.StateSince.IsZero() {
		return
	}
	d := after.StateSince.Sub(before.StateSince)
	if d < 0 {
		return
	}
	switch {
	case before.State == node.StateProvisioning && after.State == node.StateInstalled:
		m.install.Observe(d.Seconds())
	case before.State == node.StateWiping && after.State == node.StateDeleted:
		m.wipe.Observe(d.Seconds())
	}
}

var (
	descDHCPPackets = prometheus.NewDesc("bootyard_dhcp_packets_total",
		"DHCP packets by message type and result.", []string{"type", "result"}, nil)
	descLeases = prometheus.NewDesc("bootyard_dhcp_leases",
		"DHCP leases by status (in_use, free).", []string{"status"}, nil)
	descTFTPTransfers = prometheus.NewDesc("bootyard_tftp_transfers_total",
		"TFTP read requests by result.", []string{"result"}, nil)
	descTFTPBytes = prometheus.NewDesc("bootyard_tftp_bytes_total", "TFTP file bytes sent.", nil, nil)
	descNodes     = prometheus.NewDesc("bootyard_nodes", "Nodes by state.", []string{"state"}, nil)
	descEvicted   = prometheus.NewDesc("bootyard_discovered_evicted_total",
		"Discovered (not imported) nodes forgotten, longest-unseen first, to stay under --max-discovered.", nil, nil)
	descEventsDropped = prometheus.NewDesc("bootyard_node_events_dropped_total",
		"Oldest node history entries (events, agent log lines) dropped to stay under the per-node caps.", nil, nil)
	// The TFTP transfer figures a boot storm is judged by.
	descTFTPActive      = prometheus.NewDesc("bootyard_tftp_transfers_active", "TFTP transfers in flight.", nil, nil)
	descTFTPRetransmits = prometheus.NewDesc("bootyard_tftp_retransmitted_blocks_total",
		"TFTP blocks sent again after a timeout or a gap reported by the client.", nil, nil)
	descTFTPStrays = prometheus.NewDesc("bootyard_tftp_stray_packets_total",
		"Datagrams on a TFTP transfer port from an address and port with no transfer there: dropped.", nil, nil)
	descTFTPWindow = prometheus.NewDesc("bootyard_tftp_windowsize",
		"Negotiated RFC 7440 windowsize per transfer (1 when the client did not ask).", nil, nil)
)

// sourceCollector turns the services' own counters into metrics at scrape time.
type sourceCollector struct{ src *MetricSources }

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDHCPPackets, descLeases, descTFTPTransfers, descTFTPBytes,
		descTFTPActive, descTFTPRetransmits, descTFTPStrays, descTFTPWindow, descNodes, descEvicted, descEventsDropped} {
		ch <- d
	}
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if c.src.DHCP != nil {
		s := c.src.DHCP()
		for _, p := range []struct {
			typ, result string
			v           uint64
		}{
			{"any", "received", s.Received}, {"any", "malformed", s.Malformed},
			{"any", "ignored", s.Ignored}, {"any", "rate_limited", s.RateLimited},
			{"any", "queue_full", s.QueueFull}, {"any", "no_subnet", s.NoSubnet}, {"any", "outside_subnets", s.OutsideSubnets},
			{"any", "send_error", s.SendErrors}, {"any", "panic", s.Panics},
			{"discover", "received", s.Discovers}, {"discover", "pool_exhausted", s.PoolExhausted},
			{"offer", "sent", s.Offers}, {"request", "received", s.Requests},
			{"ack", "sent", s.Acks}, {"nak", "sent", s.Naks},
			{"release", "received", s.Releases}, {"decline", "received", s.Declines},
			{"release", "spoofed", s.ReleaseSpoofed}, {"decline", "spoofed", s.DeclineSpoofed},
			{"inform", "received", s.Informs}, {"proxy", "sent", s.ProxyReplies},
			{"relayed", "sent", s.Relayed},
		} {
			counter(descDHCPPackets, p.v, p.typ, p.result)
		}
		ch <- prometheus.MustNewConstMetric(descLeases, prometheus.GaugeValue, float64(s.ActiveLeases), "in_use")
		free := c.src.DHCPPool - int(s.ActiveLeases)
		if free < 0 {
			free = 0
		}
		ch <- prometheus.MustNewConstMetric(descLeases, prometheus.GaugeValue, float64(free), "free")
	}
	if c.src.TFTP != nil {
		s := c.src.TFTP()
		for _, p := range []struct {
			result string
			v      uint64
		}{
			{"requested", s.Requests}, {"served", s.Served}, {"not_found", s.NotFound},
			{"refused", s.Refused}, {"write_refused", s.WritesRefused}, {"malformed", s.Malformed},
			{"failed", s.Failed}, {"panic", s.Panics}, {"busy", s.Busy}, {"repeated", s.Repeats},
		} {
			counter(descTFTPTransfers, p.v, p.result)
		}
		counter(descTFTPBytes, s.BytesSent)
		counter(descTFTPRetransmits, s.Retransmits)
		counter(descTFTPStrays, s.Strays)
		ch <- prometheus.MustNewConstMetric(descTFTPActive, prometheus.GaugeValue, float64(s.Active))
		ch <- prometheus.MustNewConstHistogram(descTFTPWindow, s.WindowSize.Count, float64(s.WindowSize.Sum), s.WindowSize.Buckets)
	}
	if c.src.Bounds != nil {
		b := c.src.Bounds()
		counter(descEvicted, b.DiscoveredEvicted)
		counter(descEventsDropped, b.EventsDropped)
	}
	if c.src.NodeCount != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		counts, err := c.src.NodeCount(ctx)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descNodes, err)
			return
		}
		for _, st := range node.States {
			ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(counts[st]), string(st))
		}
	}
}
