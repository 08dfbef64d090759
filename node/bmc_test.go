package node

import (
	"errors"
	"strings"
	"testing"
)

func TestParseBMCURL(t *testing.T) {
	tests := []struct {
		in       string
		want     BMC
		hostPort string
		err      string // part of the error; "" means none
	}{
		{in: "ipmi://10.0.0.5", want: BMC{Protocol: BMCIPMI, Address: "10.0.0.5"}, hostPort: "10.0.0.5:623"},
		{in: "ipmi://10.0.0.5:6230", want: BMC{Protocol: BMCIPMI, Address: "10.0.0.5:6230"}, hostPort: "10.0.0.5:6230"},
		{in: "redfish://bmc-7.lab", want: BMC{Protocol: BMCRedfish, Address: "bmc-7.lab"}, hostPort: "bmc-7.lab:443"},
		{in: "redfish+https://[fd00::7]", want: BMC{Protocol: BMCRedfish, Address: "[fd00::7]"}, hostPort: "[fd00::7]:443"},
		{in: "redfish+http://127.0.0.1:8000/", want: BMC{Protocol: BMCRedfish, Address: "127.0.0.1:8000", PlainHTTP: true}, hostPort: "127.0.0.1:8000"},
		{in: "ipmi://admin:Secret-pw@10.0.0.5", err: "no user or password in the URL"},
		{in: "redfish://10.0.0.5/redfish/v1/Systems/1", err: "no path or query"},
		{in: "ssh://10.0.0.5", err: "scheme must be"},
		{in: "10.0.0.5", err: "want ipmi://"},
		{in: "ipmi://10.0.0.5:0", err: "port"},
		{in: "ipmi://10.0.0.5:70000", err: "port"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBMCURL(tt.in)
			if tt.err != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want ErrInvalid saying %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "Secret-pw") {
					t.Fatalf("the error repeats the password: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseBMCURL = %+v, %v; want %+v", got, err, tt.want)
			}
			if hp := got.HostPort(); hp != tt.hostPort {
				t.Fatalf("HostPort = %s, want %s", hp, tt.hostPort)
			}
			if again, err := ParseBMCURL(got.URL()); err != nil || again != got {
				t.Fatalf("URL %s does not parse back: %+v, %v", got.URL(), again, err)
			}
		})
	}
}

func TestBMC_ValidateRefusesRedfishSettingsOnIPMI(t *testing.T) {
	for _, b := range []BMC{
		{Protocol: BMCIPMI, Address: "10.0.0.5", SystemID: "1"},
		{Protocol: BMCIPMI, Address: "10.0.0.5", InsecureTLS: true},
		{Protocol: BMCIPMI, Address: "10.0.0.5", User: "a-user-name-of-17"},
		{Protocol: "snmp", Address: "10.0.0.5"},
		{Protocol: BMCRedfish, Address: "10.0.0.5", SystemID: "../Managers"},
	} {
		if err := b.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", b, err)
		}
	}
}
