package cloudinit

// mergeCloudConfig merges the operator's extra cloud-config into Bootyard's. Lists are
// concatenated with the operator's items first, so their runcmd (a proxy, a package
// mirror) runs before the join and their write_files cannot replace ours by coming
// later. For any other key both set, Bootyard's value wins: the hostname must be the
// node name and the join config must be the one rendered for this node.
func mergeCloudConfig(ours, extra map[string]any) map[string]any {
	for k, ev := range extra {
		ov, both := ours[k]
		if !both {
			ours[k] = ev
			continue
		}
		el, eIsList := ev.([]any)
		ol, oIsList := asList(ov)
		if eIsList && oIsList {
			ours[k] = append(append(make([]any, 0, len(el)+len(ol)), el...), ol...)
		}
	}
	return ours
}

// asList widens the list types Bootyard's own config uses.
func asList(v any) ([]any, bool) {
	switch l := v.(type) {
	case []any:
		return l, true
	case []string:
		out := make([]any, len(l))
		for i, s := range l {
			out[i] = s
		}
		return out, true
	}
	return nil, false
}
