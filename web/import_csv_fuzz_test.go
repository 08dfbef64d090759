package web

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
)

// FuzzImportCSV feeds arbitrary files to the bulk import's CSV parser: it must never
// panic, a refused file must be ErrInvalid (a 422, never a 500), and every row it returns
// must carry a line number inside the file, in increasing order.
func FuzzImportCSV(f *testing.F) {
	for _, seed := range []string{
		rackCSV,
		"mac,role\n52:54:00:00:00:01,worker\n",
		"\ufeffMAC, Role ,Name\n52:54:00:00:00:01, server ,cp-1\n",
		"mac,role,labels\n52:54:00:00:00:01,worker,\"a=b,c=d\"\n52:54:00:00:00:02,worker,=x\n",
		"mac,role\n\"unterminated,worker\n",
		"mac,role\n52:54:00:00:00:01\n52:54:00:00:00:02,worker,extra\n",
		"mac,role\r\n52:54:00:00:00:01,worker\r\n",
		"mac,mac\n", "", "\n\n", "#only a comment\n", "\x00\xff,\"\"\"\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		lines, err := parseImportCSV(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("refused with %v, not ErrInvalid", err)
			}
			return
		}
		total := strings.Count(string(body), "\n") + 1
		last := 1
		for _, l := range lines {
			if l.Line <= last || l.Line > total {
				t.Fatalf("row line %d after %d in a file of %d lines", l.Line, last, total)
			}
			last = l.Line
			if l.Err == nil {
				var n node.Node
				_ = l.Input.apply(&n, true) // must not panic; errors are the row's
			}
		}
	})
}
