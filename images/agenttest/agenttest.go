// Package agenttest is a stand-in for Bootyard's agent API (/agent/v1/*) and image
// server, for tests of the installer agent: it hands out one task, serves the image,
// and records what the agent reports.
package agenttest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bootyard/bootyard/agentapi"
)

// Task is the GET /agent/v1/task answer: the contract's own type, so the fake cannot
// drift from what the real server speaks.
type Task = agentapi.Task

// Image is the task's image.
type Image = agentapi.Image

// Progress is one POST /agent/v1/progress.
type Progress = agentapi.Progress

// Server is the fake API. Set Task, Token and ImageBytes before serving.
type Server struct {
	Token      string
	Task       Task
	ImageBytes []byte

	mu        sync.Mutex
	progress  []Progress
	logs      []string
	done      []string
	wiped     []agentapi.DiskCheck
	inventory []agentapi.Inventory
	firmware  []agentapi.FirmwareReport
	failed    []string
	changed   chan struct{}
}

// New returns a server for one task, authorised by token, serving image at /images/<name>.
func New(token string, task Task, image []byte) *Server {
	return &Server{Token: token, Task: task, ImageBytes: image, changed: make(chan struct{}, 1)}
}

// ServeHTTP implements the agent API and the image download.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/images/") {
		http.ServeContent(w, r, "image", time.Time{}, bytes.NewReader(s.ImageBytes))
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		http.Error(w, `{"error":"bad token"}`, http.StatusUnauthorized)
		return
	}
	// One struct for every report: each call fills the fields its body has.
	var body struct {
		agentapi.Progress
		agentapi.Log
		agentapi.Done
		agentapi.Failed
		agentapi.FirmwareReport
	}
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notify()
	switch r.Method + " " + r.URL.Path {
	case "GET /agent/v1/task":
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s.Task)
		return
	case "POST /agent/v1/progress":
		s.progress = append(s.progress, body.Progress)
	case "POST /agent/v1/log":
		s.logs = append(s.logs, body.Lines...)
	case "POST /agent/v1/done":
		s.done = append(s.done, string(body.Action))
		s.wiped = append(s.wiped, body.Wiped...)
		if body.Inventory != nil {
			s.inventory = append(s.inventory, *body.Inventory)
		}
	case "POST /agent/v1/failed":
		s.failed = append(s.failed, body.Reason)
	case "POST /agent/v1/firmware":
		s.firmware = append(s.firmware, body.FirmwareReport)
	default:
		http.NotFound(w, r)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Changed is signalled (coalesced) after every call.
func (s *Server) Changed() <-chan struct{} { return s.changed }

// Report is what the agent sent so far.
type Report struct {
	Progress  []Progress
	Logs      []string
	Done      []string
	Wiped     []agentapi.DiskCheck // the read-backs a wipe's done carried
	Inventory []agentapi.Inventory // what inspections' done carried
	Firmware  []agentapi.FirmwareReport
	Failed    []string
}

// Report returns a copy of what the agent sent so far.
func (s *Server) Report() Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Report{
		Progress:  append([]Progress(nil), s.progress...),
		Logs:      append([]string(nil), s.logs...),
		Done:      append([]string(nil), s.done...),
		Wiped:     append([]agentapi.DiskCheck(nil), s.wiped...),
		Inventory: append([]agentapi.Inventory(nil), s.inventory...),
		Firmware:  append([]agentapi.FirmwareReport(nil), s.firmware...),
		Failed:    append([]string(nil), s.failed...),
	}
}

// Finished says whether the agent reported done or failed.
func (r Report) Finished() bool { return len(r.Done) > 0 || len(r.Failed) > 0 }
