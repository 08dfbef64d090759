package web

import "github.com/bootyard/bootyard/node"

// SecureBootText is the node page's word for what the agent read from the firmware.
func (r nodeRow) SecureBootText() string {
	switch {
	case r.SecureBoot == nil:
		return "not reported yet (the agent reports it)"
	case *r.SecureBoot:
		return "on"
	}
	return "off"
}

// UEFILoaderText is the node's UEFI loader setting as the page shows it.
func (r nodeRow) UEFILoaderText() string {
	if r.UEFILoader == node.LoaderInherit {
		return "site setting"
	}
	return string(r.UEFILoader)
}
