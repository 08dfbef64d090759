package main

import (
	"io"
	"log/slog"
	"net"
	"sync"

	"github.com/bootyard/bootyard/boot/netns"
)

// forward accepts on listen in the host's namespace and connects each client to target
// inside the demo namespace: the web page is reachable from the host on 127.0.0.1
// without a veth or route into the lab.
func forward(listen, ns, target string, log *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var up net.Conn
				if err := netns.Enter(ns, func() error {
					var err error
					up, err = net.Dial("tcp", target)
					return err
				}); err != nil {
					log.Warn("forward to the demo", slog.Any("err", err))
					return
				}
				defer up.Close()
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); _, _ = io.Copy(up, c); closeWrite(up) }()
				go func() { defer wg.Done(); _, _ = io.Copy(c, up); closeWrite(c) }()
				wg.Wait()
			}()
		}
	}()
	return ln, nil
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}
