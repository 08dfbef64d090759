package bmc

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

func TestRedfish_PowerAndBootOnceWithASession(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sessions bool
		wantAuth string
	}{
		{"session service", true, "token"},
		{"no session service: basic auth", false, "basic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newRedfishService(t, tc.sessions, "sys-1")
			c, err := New(svc.target(svc.pw))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if st, err := c.PowerStatus(ctx); err != nil || st != PowerOff {
				t.Fatalf("PowerStatus = %s, %v", st, err)
			}
			if err := c.SetBootOnce(ctx, BootPXE); err != nil {
				t.Fatal(err)
			}
			if got := svc.system("sys-1"); got.Target != "Pxe" || got.Enabled != "Once" {
				t.Fatalf("boot override = %+v, want Pxe once", got)
			}
			// Cycle from off posts On: the service refuses a restart of a stopped system.
			if err := c.PowerCycle(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.PowerCycle(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.PowerReset(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.PowerOff(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.SetBootOnce(ctx, BootDisk); err != nil {
				t.Fatal(err)
			}
			if got := svc.system("sys-1"); got.Target != "Hdd" || got.Enabled != "Once" || got.PowerState != "Off" {
				t.Fatalf("system = %+v, want Hdd once, off", got)
			}
			if err := c.PowerOn(ctx); err != nil {
				t.Fatal(err)
			}
			if st, err := c.PowerStatus(ctx); err != nil || st != PowerOn {
				t.Fatalf("PowerStatus = %s, %v", st, err)
			}
			svc.mu.Lock()
			defer svc.mu.Unlock()
			if want := []string{"On", "PowerCycle", "ForceRestart", "ForceOff", "On"}; !slices.Equal(svc.resets, want) {
				t.Fatalf("reset types posted = %v, want %v", svc.resets, want)
			}
			for _, line := range svc.seen {
				if strings.Contains(line, "/Systems") && !strings.HasSuffix(line, " "+tc.wantAuth) {
					t.Fatalf("request %q did not use %s auth", line, tc.wantAuth)
				}
			}
			if len(svc.tokens) != 0 {
				t.Fatalf("sessions left open on the BMC: %v", svc.tokens)
			}
		})
	}
}

func TestRedfish_SystemIDChoosesAmongSeveral(t *testing.T) {
	svc := newRedfishService(t, true, "blade-1", "blade-2")
	tg, cfg := svc.target(svc.pw)
	c, _ := New(tg, cfg)
	err := c.PowerOn(context.Background())
	if err == nil || !strings.Contains(err.Error(), "set the BMC system ID") {
		t.Fatalf("two systems and no ID: %v", err)
	}
	tg.BMC.SystemID = "blade-2"
	c, _ = New(tg, cfg)
	if err := c.PowerOn(context.Background()); err != nil {
		t.Fatal(err)
	}
	if svc.system("blade-2").PowerState != "On" || svc.system("blade-1").PowerState != "Off" {
		t.Fatalf("blade-1 %+v, blade-2 %+v", svc.system("blade-1"), svc.system("blade-2"))
	}
	tg.BMC.SystemID = "blade-9"
	c, _ = New(tg, cfg)
	if err := c.PowerOn(context.Background()); err == nil || !strings.Contains(err.Error(), `no system "blade-9"`) {
		t.Fatalf("unknown system ID: %v", err)
	}
}

func TestRedfish_RefusalsAreErrorsWithoutThePassword(t *testing.T) {
	t.Run("401 wrong password: one login attempt, no basic-auth retry", func(t *testing.T) {
		svc := newRedfishService(t, true, "1")
		wrong := "Wrong-redfish-pw-4417"
		c, _ := New(svc.target(wrong))
		_, err := c.PowerStatus(context.Background())
		if err == nil || httpStatus(err) != 401 {
			t.Fatalf("wrong password: %v, want a 401", err)
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), svc.pw) {
			t.Fatalf("error carries a password: %v", err)
		}
		svc.mu.Lock()
		defer svc.mu.Unlock()
		if svc.logins != 1 {
			t.Fatalf("%d login attempts, want 1", svc.logins)
		}
		for _, line := range svc.seen {
			if strings.HasSuffix(line, " basic") {
				t.Fatalf("retried with basic auth: %q", line)
			}
		}
	})
	t.Run("503 unavailable", func(t *testing.T) {
		svc := newRedfishService(t, true, "1")
		svc.mu.Lock()
		svc.unavailable = true
		svc.mu.Unlock()
		c, _ := New(svc.target(svc.pw))
		err := c.PowerOn(context.Background())
		if err == nil || httpStatus(err) != 503 {
			t.Fatalf("503 service: %v", err)
		}
		if strings.Contains(err.Error(), svc.pw) {
			t.Fatalf("error carries the password: %v", err)
		}
	})
	t.Run("TLS verification on by default", func(t *testing.T) {
		svc := newRedfishService(t, true, "1")
		tg, cfg := svc.target(svc.pw)
		tg.BMC.InsecureTLS = false
		c, _ := New(tg, cfg)
		err := c.PowerOn(context.Background())
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("self-signed certificate with verification on: %v", err)
		}
		svc.mu.Lock()
		defer svc.mu.Unlock()
		if len(svc.bodies) != 0 {
			t.Fatalf("credentials sent over an unverified connection: %v", svc.bodies)
		}
	})
}

func TestBootOnce_ModeFollowsTheFirmwareTheMachineWasSeenWith(t *testing.T) {
	seen := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		boot node.BootInfo
		want string
	}{
		{"never seen", node.BootInfo{}, ""},
		{"BIOS", node.BootInfo{Firmware: "bios", Arch: 0, LastSeen: seen}, "Legacy"},
		{"UEFI", node.BootInfo{Firmware: "uefi", Arch: 7, LastSeen: seen}, "UEFI"},
		{"UEFI HTTP", node.BootInfo{Firmware: "uefi-http", Arch: 16, LastSeen: seen}, "UEFI"},
		{"iPXE on UEFI", node.BootInfo{Firmware: "ipxe", Arch: 7, LastSeen: seen}, "UEFI"},
		{"iPXE on BIOS", node.BootInfo{Firmware: "ipxe", Arch: 0, LastSeen: seen}, "Legacy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newRedfishService(t, true, "1")
			tg, _ := svc.target(svc.pw)
			n := node.Node{Name: "n", BMC: &tg.BMC, Boot: tc.boot}
			inv := &memInventory{nodes: []node.Node{n}, secrets: map[string]string{"n": svc.pw}}
			s := NewService(ServiceConfig{}, inv)
			if _, err := s.Do(context.Background(), "n", Request{Action: ActionOn, BootOnce: BootPXE}, "api"); err != nil {
				t.Fatal(err)
			}
			if got := svc.system("1"); got.Mode != tc.want || got.Target != "Pxe" {
				t.Fatalf("boot override %+v, want mode %q", got, tc.want)
			}
		})
	}
}
