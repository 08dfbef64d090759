package netns

import (
	"context"
	"net"
	"net/http"
	"time"
)

// HTTPClient returns a client whose connections are opened inside the namespace, so a
// test in the root namespace can talk to a server that listens on a namespace address.
func (ns *NS) HTTPClient() *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := ns.Do(func() error {
				var d net.Dialer
				var err error
				conn, err = d.DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
		DisableKeepAlives: false,
		MaxIdleConns:      4,
		IdleConnTimeout:   30 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
