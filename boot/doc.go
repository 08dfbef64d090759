// Package boot gets machines from power-on to iPXE: a DHCP server (full or proxyDHCP,
// github.com/insomniacslk/dhcp server4) that picks the boot file from what the firmware
// says, leases kept in bbolt through the store, and the TFTP server for the binaries.
//
// It asks small interfaces (Inventory, LeaseStore) for what it needs to know; cmd wires
// a *store.Store into them.
package boot
