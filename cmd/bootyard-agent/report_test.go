package main

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/images/agenttest"
)

func TestShipper_SendsLinesWithinTheServersLimitsAndOnlyTheLatestProgress(t *testing.T) {
	api := agenttest.New("tok", agenttest.Task{}, nil)
	srv := httptest.NewServer(api)
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	s := &shipper{}
	for i := range 250 {
		s.add(strings.Repeat("x", 2000) + string(rune('a'+i%26)))
	}
	s.setProgress(agentapi.Progress{Phase: "write", Percent: 10})
	s.setProgress(agentapi.Progress{Phase: "wipe", Percent: 50})
	s.setProgress(agentapi.Progress{Phase: "write", Percent: 20})
	if err := s.flush(context.Background()); err != nil {
		t.Fatalf("flush before connect: %v", err)
	}
	if rep := api.Report(); len(rep.Logs)+len(rep.Progress) != 0 {
		t.Fatalf("sent before the API was known: %+v", rep)
	}
	s.connect(newAPIClient(base, "tok"))
	for range 3 {
		if err := s.flush(context.Background()); err != nil {
			t.Fatalf("flush: %v", err)
		}
	}
	rep := api.Report()
	if len(rep.Logs) != 250 {
		t.Errorf("sent %d lines over three flushes, want all 250", len(rep.Logs))
	}
	for _, l := range rep.Logs {
		if len(l) > maxLogLineLen {
			t.Fatalf("sent a %d-byte line", len(l))
		}
	}
	if len(rep.Progress) != 2 || rep.Progress[0] != (agenttest.Progress{Phase: "write", Percent: 20}) || rep.Progress[1].Phase != "wipe" {
		t.Errorf("progress sent = %+v, want the latest write then wipe", rep.Progress)
	}
}

func TestShipper_DropsLinesOnARejectedToken(t *testing.T) {
	api := agenttest.New("right", agenttest.Task{}, nil)
	srv := httptest.NewServer(api)
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	s := &shipper{}
	s.connect(newAPIClient(base, "wrong"))
	s.add("a line")
	if err := s.flush(context.Background()); err == nil {
		t.Fatal("flush with a rejected token succeeded")
	}
	if len(s.lines) != 0 {
		t.Errorf("%d lines kept for a token that will never be accepted", len(s.lines))
	}
}
