package web

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/node"
)

// Live updates are server-sent events: one GET per open page that the browser's
// EventSource reconnects by itself. Each stream re-reads the store every pollEvery and
// sends only what changed, as HTML fragments rendered by the same templates as the page.

// sseKeepAlive is how often an idle stream sends a comment, so proxies and NAT tables
// do not drop a connection that has had nothing to say.
const sseKeepAlive = 15 * time.Second

// sseRetryMillis tells EventSource how soon to reconnect after Bootyard restarts.
const sseRetryMillis = 2000

type sseStream struct {
	res      *echo.Response
	lastSend time.Time
}

func startSSE(c echo.Context) *sseStream {
	res := c.Response()
	h := res.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx in front must not buffer the stream
	res.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(res, "retry: "+strconv.Itoa(sseRetryMillis)+"\n\n")
	res.Flush()
	return &sseStream{res: res, lastSend: time.Now()}
}

// send writes one event; data may hold newlines (each line becomes a data: line, which
// EventSource joins back with "\n").
func (s *sseStream) send(event, id, data string) error {
	var b strings.Builder
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	b.WriteString("event: " + event + "\n")
	for _, line := range strings.Split(data, "\n") {
		b.WriteString("data: ")
		b.WriteString(strings.TrimSuffix(line, "\r"))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	if _, err := io.WriteString(s.res, b.String()); err != nil {
		return err
	}
	s.res.Flush()
	s.lastSend = time.Now()
	return nil
}

func (s *sseStream) keepAlive() error {
	if time.Since(s.lastSend) < sseKeepAlive {
		return nil
	}
	if _, err := io.WriteString(s.res, ": keep-alive\n\n"); err != nil {
		return err
	}
	s.res.Flush()
	s.lastSend = time.Now()
	return nil
}

// streamInventory keeps an open nodes page current while sending as little as it can:
// it re-runs the page's own query (one page, never the inventory) and sends
//
//	row        one <tr> whose node changed (a state change costs about 1 KB)
//	counts     the counts by state, when they change
//	inventory  the page's table, only when the set of rows on it changes (a node
//	           enters or leaves the page, the match count moves)
//
// The page passes v (its rows' membership key) and r (a hash of each row as drawn), so
// the first tick sends only the rows that changed since the page was drawn, not the page
// again. It compares contents, not times: the replica that drew the page and the ones
// that changed its rows need not agree on the clock.
func (u *ui) streamInventory(c echo.Context) error {
	ctx := c.Request().Context()
	view := viewFromURL(c.QueryParams())
	lastMembers := c.QueryParam("v")
	drawn, _ := base64.RawURLEncoding.DecodeString(c.QueryParam("r")) // none or bad: every row is sent once
	s := startSSE(c)
	tick := time.NewTicker(u.pollEvery)
	defer tick.Stop()
	// The counts' key as the page drew them; a reconnect sends them again (see streamNode).
	var lastCounts string
	if c.Request().Header.Get("Last-Event-ID") == "" {
		lastCounts = c.QueryParam("c")
	}
	rows := map[string]uint32{} // name → hash of the row as last sent (or as the page drew it)
	first := true
	for {
		inv, err := u.inventory(ctx, view, false)
		if err != nil {
			return u.streamEnd(ctx.Err(), err)
		}
		counts, err := u.inv.StateCounts(ctx)
		if err != nil {
			return u.streamEnd(ctx.Err(), err)
		}
		gone, err := u.sendChanged(s, "counts", "state_counts", stateCountsView(counts, view), counts, &lastCounts)
		if err != nil {
			return u.streamEnd(nil, err)
		}
		if gone {
			return nil
		}
		if members := membersKey(inv); members != lastMembers {
			html, err := u.fragment("inventory", inv)
			if err != nil {
				return u.streamEnd(nil, err)
			}
			if err := s.send("inventory", members, html); err != nil {
				return nil
			}
			lastMembers = members
			clear(rows)
			for _, r := range inv.Nodes {
				rows[r.Name] = rowHash(r)
			}
		} else {
			// Unchanged members: the same rows in the same order as the page drew them.
			asDrawn := first && len(drawn) == 4*len(inv.Nodes)
			for i, r := range inv.Nodes {
				k := rowHash(r)
				prev, known := rows[r.Name]
				if asDrawn {
					prev, known = binary.BigEndian.Uint32(drawn[4*i:]), true
				}
				rows[r.Name] = k
				if known && prev == k {
					continue
				}
				html, err := u.fragment("node_row", r)
				if err != nil {
					return u.streamEnd(nil, err)
				}
				if err := s.send("row", "", html); err != nil {
					return nil
				}
			}
		}
		first = false
		if s.keepAlive() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// membersKey identifies which rows a page shows and the totals around them: when it is
// unchanged, only rows that changed need sending.
func membersKey(inv inventoryView) string {
	h := fnv.New64a()
	for _, r := range inv.Nodes {
		io.WriteString(h, r.Name+"\x00")
	}
	fmt.Fprintf(h, "%d/%d/%d/%s/%s/%s", inv.Matched, inv.Total, inv.DiscoveredTotal, inv.Next, inv.First, inv.Error)
	for _, r := range inv.Discovered {
		b, _ := json.Marshal(r.Node)
		h.Write(b)
	}
	return strconv.FormatUint(h.Sum64(), 36)
}

// rowHash is a hash of what a row shows, without the render time its ages count from.
func rowHash(r nodeRow) uint32 {
	h := fnv.New32a()
	b, _ := json.Marshal(r.Node)
	h.Write(b)
	io.WriteString(h, "\x00"+r.Power)
	return h.Sum32()
}

// rowsKey is the page's rows as drawn for its stream: each row's hash, in order, 6
// characters a row (6 KB at the largest page, 1,000 rows).
func rowsKey(rows []nodeRow) string {
	b := make([]byte, 0, 4*len(rows))
	for _, r := range rows {
		b = binary.BigEndian.AppendUint32(b, rowHash(r))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// streamNode sends a node's new events (timeline items and installer log lines) and its
// summary whenever it changes. ?after= (or Last-Event-ID on reconnect) is the last event
// sequence number the page already shows.
func (u *ui) streamNode(c echo.Context) error {
	ctx := c.Request().Context()
	ref := c.Param("ref")
	afterText := c.Request().Header.Get("Last-Event-ID")
	if afterText == "" {
		afterText = c.QueryParam("after")
	}
	after, _ := strconv.ParseUint(afterText, 10, 64)
	// The summary's key as the page drew it. A reconnect (which names its last event)
	// sends the summary again: the page may show a newer one than it was drawn with.
	var lastSummary string
	if c.Request().Header.Get("Last-Event-ID") == "" {
		lastSummary = c.QueryParam("s")
	}
	s := startSSE(c)
	tick := time.NewTicker(u.pollEvery)
	defer tick.Stop()
	for {
		n, err := u.inv.GetNode(ctx, ref)
		if errors.Is(err, node.ErrNotFound) {
			_ = s.send("gone", "", "This node has been removed.")
			return nil
		}
		if err != nil {
			return u.streamEnd(ctx.Err(), err)
		}
		events, err := u.inv.Events(ctx, n.Name, nodeEventLimit)
		if err != nil {
			return u.streamEnd(ctx.Err(), err)
		}
		for _, e := range events {
			if e.Seq <= after {
				continue
			}
			kind, tmpl := "timeline", "event_item"
			if isLogEvent(e) {
				kind, tmpl = "log", "log_line"
			}
			html, err := u.fragment(tmpl, e)
			if err != nil {
				return u.streamEnd(nil, err)
			}
			if err := s.send(kind, strconv.FormatUint(e.Seq, 10), html); err != nil {
				return nil
			}
			after = e.Seq
		}
		sum := u.summary(n, events)
		gone, err := u.sendChanged(s, "summary", "node_summary", sum, summaryKey(sum), &lastSummary)
		if err != nil {
			return u.streamEnd(nil, err)
		}
		if gone {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// sendChanged sends tmpl rendered with data as event when key differs from *last, and a
// keep-alive otherwise. The key is the data without the ages the page's script ticks
// itself: replacing the fragment every second would drop the operator's text selection
// and keyboard focus. gone reports a browser that went away.
func (u *ui) sendChanged(s *sseStream, event, tmpl string, data, key any, last *string) (gone bool, err error) {
	k, err := changeKey(key)
	if err != nil {
		return false, err
	}
	if k == *last {
		return s.keepAlive() != nil, nil
	}
	html, err := u.fragment(tmpl, data)
	if err != nil {
		return false, err
	}
	if err := s.send(event, "", html); err != nil {
		return true, nil
	}
	*last = k
	return false, nil
}

// changeKey is a short digest of a fragment's key, for sendChanged to compare and for a
// page to pass in its stream's URL: the first tick then sends nothing the page already
// draws. Replacing a just-drawn fragment would swap the elements under the operator's
// cursor (or a test's) for identical copies, a moment after the page appeared.
func changeKey(key any) (string, error) {
	b, err := json.Marshal(key)
	if err != nil {
		return "", err
	}
	h := fnv.New64a()
	h.Write(b)
	return strconv.FormatUint(h.Sum64(), 36), nil
}

// summaryKey is what a node page's summary shows, less the ticking ages.
func summaryKey(sum summaryView) []any { return []any{sum.Node, sum.Progress, sum.Stage} }

// streamEnd closes a stream after a store or template error. A cancelled request is the
// browser leaving, not a fault; anything else is logged, since the response has already
// started and no error page can be sent.
func (u *ui) streamEnd(ctxErr, err error) error {
	if ctxErr == nil {
		u.srv.log.Error("live update stream stopped", slog.Any("err", err))
	}
	return nil
}
