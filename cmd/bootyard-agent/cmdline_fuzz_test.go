package main

import "testing"

// FuzzParseCmdline: the command line comes from a script served over the network; the
// parser must never panic, and whatever it accepts is a usable http(s) URL and a MAC.
func FuzzParseCmdline(f *testing.F) {
	f.Add("initrd=initramfs.gz console=ttyS0,115200 console=tty0 quiet bootyard.url=http://10.0.0.1:8080 bootyard.token=ab12 bootyard.mac=52:54:00:12:34:56")
	f.Add("bootyard.url=https://[fe80::1%25eth0]:8443/x bootyard.token== bootyard.mac=00:00:00:00:00:00:00:00")
	f.Add("bootyard.url bootyard.token bootyard.mac")
	f.Fuzz(func(t *testing.T, cmdline string) {
		p, err := parseCmdline(cmdline)
		if err != nil {
			return
		}
		if p.URL == nil || (p.URL.Scheme != "http" && p.URL.Scheme != "https") || p.URL.Host == "" || len(p.MAC) == 0 || p.Token == "" {
			t.Fatalf("accepted unusable parameters %+v from %q", p, cmdline)
		}
	})
}
