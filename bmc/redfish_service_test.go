package bmc

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/bootyard/bootyard/node"
)

// redfishService is a Redfish service written from the DMTF schema (ServiceRoot v1,
// SessionService, ComputerSystem v1 with Boot and Actions/#ComputerSystem.Reset), enough
// of it to check Bootyard's client: no Redfish emulator is installable here.
type redfishService struct {
	t        *testing.T
	srv      *httptest.Server
	user, pw string
	// sessions, when false, leaves SessionService out of the service root: the client
	// must fall back to basic auth.
	sessions bool

	mu          sync.Mutex
	unavailable bool                   // every request answers 503
	systems     map[string]*fakeSystem // by Id
	tokens      map[string]string      // live session token → session URI
	seen        []string               // "METHOD path auth" of every request
	resets      []string               // ResetType values received
	logins      int                    // session creations tried
	bodies      []string               // every request body, to look for secrets
}

type fakeSystem struct {
	PowerState string
	Target     string
	Enabled    string
	Mode       string // BootSourceOverrideMode as last PATCHed; "" when never given
}

func newRedfishService(t *testing.T, sessions bool, systemIDs ...string) *redfishService {
	s := &redfishService{t: t, user: "root", pw: "Redfish-pw-90210", sessions: sessions,
		systems: map[string]*fakeSystem{}, tokens: map[string]string{}}
	for _, id := range systemIDs {
		s.systems[id] = &fakeSystem{PowerState: "Off", Target: "None", Enabled: "Disabled"}
	}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *redfishService) target(password string) (Target, DialConfig) {
	addr := strings.TrimPrefix(s.srv.URL, "https://")
	return Target{BMC: node.BMC{Protocol: node.BMCRedfish, Address: addr, User: s.user, InsecureTLS: true}, Password: node.Secret(password)},
		DialConfig{}
}

func (s *redfishService) system(id string) fakeSystem {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.systems[id]
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func redfishError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": "Base.1.0.GeneralError", "message": msg}})
}

func (s *redfishService) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var body map[string]any
	if r.Body != nil {
		dec := json.NewDecoder(r.Body)
		var rawMsg json.RawMessage
		if dec.Decode(&rawMsg) == nil {
			s.bodies = append(s.bodies, string(rawMsg))
			_ = json.Unmarshal(rawMsg, &body)
		}
	}
	auth := "none"
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		auth = "token"
	} else if _, _, ok := r.BasicAuth(); ok {
		auth = "basic"
	}
	s.seen = append(s.seen, r.Method+" "+r.URL.Path+" "+auth)
	if s.unavailable {
		redfishError(w, http.StatusServiceUnavailable, "the service is starting")
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	const sessionsPath = "/redfish/v1/SessionService/Sessions"
	switch {
	case path == "/redfish/v1" && r.Method == http.MethodGet:
		// The service root is readable without credentials (Redfish spec, clause 13.3).
		root := map[string]any{"@odata.id": "/redfish/v1/", "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
			"Id": "RootService", "Name": "Root Service", "RedfishVersion": "1.6.0",
			"Systems": map[string]string{"@odata.id": "/redfish/v1/Systems"}}
		if s.sessions {
			root["SessionService"] = map[string]string{"@odata.id": "/redfish/v1/SessionService"}
			root["Links"] = map[string]any{"Sessions": map[string]string{"@odata.id": sessionsPath}}
		}
		writeJSON(w, http.StatusOK, root)
		return
	case path == sessionsPath && r.Method == http.MethodPost && s.sessions:
		s.logins++
		if body["UserName"] != s.user || body["Password"] != s.pw {
			redfishError(w, http.StatusUnauthorized, "invalid credentials")
			return
		}
		tok := "tok-" + string(rune('a'+len(s.tokens)))
		uri := sessionsPath + "/" + tok
		s.tokens[tok] = uri
		w.Header().Set("X-Auth-Token", tok)
		w.Header().Set("Location", uri)
		writeJSON(w, http.StatusCreated, map[string]string{"@odata.id": uri, "Id": tok, "UserName": s.user})
		return
	}
	if !s.authorized(r) {
		redfishError(w, http.StatusUnauthorized, "authentication required")
		return
	}
	switch {
	case strings.HasPrefix(path, sessionsPath+"/") && r.Method == http.MethodDelete:
		delete(s.tokens, strings.TrimPrefix(path, sessionsPath+"/"))
		w.WriteHeader(http.StatusNoContent)
	case path == "/redfish/v1/Systems" && r.Method == http.MethodGet:
		var members []map[string]string
		for id := range s.systems {
			members = append(members, map[string]string{"@odata.id": "/redfish/v1/Systems/" + id})
		}
		writeJSON(w, http.StatusOK, map[string]any{"@odata.id": "/redfish/v1/Systems", "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
			"Name": "Computer System Collection", "Members@odata.count": len(members), "Members": members})
	case strings.HasPrefix(path, "/redfish/v1/Systems/"):
		rest := strings.TrimPrefix(path, "/redfish/v1/Systems/")
		id, action, _ := strings.Cut(rest, "/")
		sys, ok := s.systems[id]
		if !ok {
			redfishError(w, http.StatusNotFound, "no such system")
			return
		}
		s.serveSystem(w, r, id, sys, action, body)
	default:
		redfishError(w, http.StatusNotFound, "not found")
	}
}

func (s *redfishService) authorized(r *http.Request) bool {
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		_, ok := s.tokens[tok]
		return ok
	}
	u, p, ok := r.BasicAuth()
	return ok && u == s.user && p == s.pw
}

func (s *redfishService) serveSystem(w http.ResponseWriter, r *http.Request, id string, sys *fakeSystem, action string, body map[string]any) {
	uri := "/redfish/v1/Systems/" + id
	switch {
	case action == "" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.id": uri, "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem", "Id": id, "Name": "System " + id,
			"PowerState": sys.PowerState,
			"Boot": map[string]any{"BootSourceOverrideTarget": sys.Target, "BootSourceOverrideEnabled": sys.Enabled,
				"BootSourceOverrideTarget@Redfish.AllowableValues": []string{"None", "Pxe", "Hdd"}},
			"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
				"target":                            uri + "/Actions/ComputerSystem.Reset",
				"ResetType@Redfish.AllowableValues": []string{"On", "ForceOff", "ForceRestart", "GracefulShutdown", "PowerCycle"}}},
		})
	case action == "" && r.Method == http.MethodPatch:
		boot, _ := body["Boot"].(map[string]any)
		t, _ := boot["BootSourceOverrideTarget"].(string)
		e, _ := boot["BootSourceOverrideEnabled"].(string)
		if t == "" || (e != "Once" && e != "Continuous" && e != "Disabled") {
			redfishError(w, http.StatusBadRequest, "Boot needs BootSourceOverrideTarget and BootSourceOverrideEnabled")
			return
		}
		sys.Target, sys.Enabled = t, e
		sys.Mode, _ = boot["BootSourceOverrideMode"].(string)
		w.WriteHeader(http.StatusNoContent)
	case action == "Actions/ComputerSystem.Reset" && r.Method == http.MethodPost:
		rt, _ := body["ResetType"].(string)
		s.resets = append(s.resets, rt)
		switch rt {
		case "On":
			sys.PowerState = "On"
		case "ForceOff", "GracefulShutdown":
			sys.PowerState = "Off"
		case "ForceRestart", "PowerCycle":
			if sys.PowerState != "On" {
				redfishError(w, http.StatusConflict, "the system is off")
				return
			}
		default:
			redfishError(w, http.StatusBadRequest, "ResetType "+rt+" is not allowed")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		redfishError(w, http.StatusMethodNotAllowed, "not allowed")
	}
}
