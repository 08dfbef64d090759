package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
)

// Token is the per-boot agent token; it never appears in a log line.
type Token string

// LogValue keeps the token out of every log.
func (Token) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String keeps the token out of fmt output too.
func (Token) String() string { return "[redacted]" }

// bootParams are the bootyard.* arguments iPXE put on the kernel command line.
type bootParams struct {
	URL   *url.URL
	Token Token
	MAC   net.HardwareAddr
}

// parseCmdline reads bootyard.url, bootyard.token and bootyard.mac from the contents of
// /proc/cmdline.
func parseCmdline(cmdline string) (bootParams, error) {
	var p bootParams
	var rawURL, mac string
	for _, field := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(field, "=")
		switch k {
		case "bootyard.url":
			rawURL = v
		case "bootyard.token":
			p.Token = Token(v)
		case "bootyard.mac":
			mac = v
		}
	}
	if rawURL == "" || p.Token == "" || mac == "" {
		return p, fmt.Errorf("kernel command line lacks bootyard.url, bootyard.token or bootyard.mac")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return p, fmt.Errorf("bootyard.url=%q: want an http(s) URL", rawURL)
	}
	p.URL = u
	p.MAC, err = net.ParseMAC(mac)
	if err != nil {
		return p, fmt.Errorf("bootyard.mac=%q: %w", mac, err)
	}
	return p, nil
}
