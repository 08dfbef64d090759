package ipxe

// SafeText is text as the scripts show it: anything outside a plain set of characters
// becomes '_'. Other loaders' renderers (GRUB) print operator and machine text with
// the same rule, so a name can never become a command in either language.
func SafeText(s string) string { return text(s) }

// SafeLine keeps a command argument on one line (control characters become spaces).
func SafeLine(s string) string { return line(s) }
