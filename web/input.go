package web

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/httperr"
	"github.com/bootyard/bootyard/node"
)

// NodeInput is the body of POST /api/v1/nodes and PATCH /api/v1/nodes/<ref>. Fields are
// strings so each is parsed at this edge with an error that names it.
type NodeInput struct {
	MAC     string            `json:"mac,omitempty"`
	MACs    []string          `json:"macs,omitempty"`
	Name    *string           `json:"name,omitempty"`
	Role    *string           `json:"role,omitempty"`
	IP      *string           `json:"ip,omitempty"`
	Gateway *string           `json:"gateway,omitempty"`
	DNS     []string          `json:"dns,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Taints  []string          `json:"taints,omitempty"`
	Image   *string           `json:"image,omitempty"`
	Disk    *string           `json:"disk,omitempty"`
	// RootDiskHints in Ironic's syntax: "serial=S123", "size>=400G,rotational=false".
	RootDiskHints *string `json:"rootDiskHints,omitempty"`
	BMCInput
	// UEFILoader is ipxe, shim or "" (the site's setting).
	UEFILoader *string `json:"uefiLoader,omitempty"`
}

// decodeJSON reads a JSON body strictly: unknown fields are an error, so a typo in a field
// name is reported instead of silently ignored.
func decodeJSON(c echo.Context, v any) error { return httperr.DecodeJSON(c, v, maxBody) }

// apply parses the input onto n. For an import every field is considered; for an update
// only those present.
func (in *NodeInput) apply(n *node.Node, importing bool) error {
	if in.MAC != "" || len(in.MACs) > 0 {
		raw := in.MACs
		if in.MAC != "" {
			raw = append([]string{in.MAC}, raw...)
		}
		macs := make([]node.MAC, 0, len(raw))
		for _, s := range raw {
			m, err := node.ParseMAC(strings.TrimSpace(s))
			if err != nil {
				return badField("mac", err)
			}
			macs = append(macs, m)
		}
		n.MACs = macs
	} else if importing {
		return badField("mac", fmt.Errorf("%w: a MAC address is required", node.ErrInvalid))
	}
	if in.Role != nil || importing {
		r := ""
		if in.Role != nil {
			r = *in.Role
		}
		role, err := node.ParseRole(r)
		if err != nil {
			return badField("role", err)
		}
		n.Role = role
	}
	if in.Name != nil && *in.Name != "" {
		if err := node.ValidateName(*in.Name); err != nil {
			return badField("name", err)
		}
		n.Name = *in.Name
	} else if importing && len(n.MACs) > 0 {
		n.Name = node.DefaultName(n.MACs[0])
	}
	if in.IP != nil {
		n.IP = netip.Prefix{}
		if *in.IP != "" {
			p, err := node.ParseIP(*in.IP)
			if err != nil {
				return badField("ip", err)
			}
			n.IP = p
		}
	}
	if in.Gateway != nil {
		n.Gateway = netip.Addr{}
		if *in.Gateway != "" {
			a, err := node.ParseAddr(*in.Gateway)
			if err != nil {
				return badField("gateway", fmt.Errorf("gateway: %w", err))
			}
			n.Gateway = a
		}
	}
	if in.DNS != nil {
		n.DNS = nil
		for _, s := range in.DNS {
			a, err := node.ParseAddr(s)
			if err != nil {
				return badField("dns", fmt.Errorf("dns: %w", err))
			}
			n.DNS = append(n.DNS, a)
		}
	}
	if in.Labels != nil {
		if err := node.ValidateLabels(in.Labels); err != nil {
			return badField("labels", err)
		}
		n.Labels = in.Labels
	}
	if in.Taints != nil {
		n.Taints = nil
		for _, s := range in.Taints {
			t, err := node.ParseTaint(s)
			if err != nil {
				return badField("taints", err)
			}
			n.Taints = append(n.Taints, t)
		}
	}
	if in.Image != nil {
		n.Image = *in.Image
	}
	if in.Disk != nil {
		if *in.Disk != "" && !strings.HasPrefix(*in.Disk, "/dev/") {
			return badField("disk", fmt.Errorf("disk %q: %w: want a /dev path", *in.Disk, node.ErrInvalid))
		}
		n.Disk = *in.Disk
	}
	if in.RootDiskHints != nil {
		h, err := node.ParseRootDiskHints(*in.RootDiskHints)
		if err != nil {
			return badField("rootDiskHints", err)
		}
		n.RootDiskHints = h
	}
	if err := in.BMCInput.apply(n); err != nil {
		return err
	}
	if in.UEFILoader != nil {
		l, err := node.ParseUEFILoader(*in.UEFILoader)
		if err != nil {
			return badField("uefiLoader", err)
		}
		n.UEFILoader = l
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	if n.Taints == nil {
		n.Taints = []node.Taint{}
	}
	if err := n.Validate(); err != nil {
		return badField("", err)
	}
	return nil
}

// DeleteInput is the body (or query) of DELETE /api/v1/nodes/<ref>.
type DeleteInput struct {
	Confirm string `json:"confirm"`
	Force   bool   `json:"force"`
	Mode    string `json:"mode"`
}

// ClusterInput is the body of PUT/PATCH /api/v1/cluster; absent fields are unchanged.
type ClusterInput struct {
	ServerURL         *string            `json:"serverURL,omitempty"`
	Token             *string            `json:"token,omitempty"`
	InstallURL        *string            `json:"installURL,omitempty"`
	InstallEnv        *map[string]string `json:"installEnv,omitempty"`
	ExtraCloudConfig  *string            `json:"extraCloudConfig,omitempty"`
	SSHAuthorizedKeys *[]string          `json:"sshAuthorizedKeys,omitempty"`
	DefaultImage      *string            `json:"defaultImage,omitempty"`
	WipeOverwrite     *bool              `json:"wipeOverwrite,omitempty"`
	JoinTurnMinutes   *int               `json:"joinTurnMinutes,omitempty"`
	UEFILoader        *string            `json:"uefiLoader,omitempty"`
}

func (in *ClusterInput) apply(c *node.ClusterSettings) error {
	if in.ServerURL != nil {
		// Stored normalised (no trailing slash) so every rendering of it agrees.
		u, err := node.NormalizeServerURL(*in.ServerURL)
		if err != nil {
			return badField("serverURL", err)
		}
		c.ServerURL = u
	}
	if in.Token != nil {
		c.Token = node.Secret(*in.Token)
	}
	if in.InstallURL != nil {
		c.InstallURL = *in.InstallURL
	}
	if in.InstallEnv != nil {
		c.InstallEnv = *in.InstallEnv
	}
	if in.ExtraCloudConfig != nil {
		c.ExtraCloudConfig = *in.ExtraCloudConfig
	}
	if in.SSHAuthorizedKeys != nil {
		c.SSHAuthorizedKeys = *in.SSHAuthorizedKeys
	}
	if in.DefaultImage != nil {
		c.DefaultImage = *in.DefaultImage
	}
	if in.WipeOverwrite != nil {
		c.WipeOverwrite = *in.WipeOverwrite
	}
	if in.JoinTurnMinutes != nil {
		c.JoinTurnMinutes = *in.JoinTurnMinutes
	}
	if in.UEFILoader != nil {
		l, err := node.ParseUEFILoader(*in.UEFILoader)
		if err != nil {
			return badField("uefiLoader", err)
		}
		c.UEFILoader = l
	}
	return c.Validate()
}
