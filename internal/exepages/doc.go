// Package exepages gives back the pages of the running executable that start-up mapped
// and nothing runs any more, so that a server's resident set is what it serves with.
//
// Go's package initialisation touches code, type data and pclntab all over a large
// binary, and the kernel maps 64 KiB around every page touched (fault-around): most of
// an idle server's resident memory is its own executable, read once. Those pages are
// clean copies of the file in private read-only mappings; madvise(MADV_DONTNEED) unmaps
// them from this process only. They stay in the page cache, and any that is run again
// faults back in from it, as after the kernel itself reclaimed them under pressure.
package exepages
