package exepages

// Stats is what a release did: the process's file-backed resident memory (RssFile of
// /proc/self/status) before and after, and the mappings given back.
type Stats struct {
	FileBefore, FileAfter int64
	Released              []Mapping
}
