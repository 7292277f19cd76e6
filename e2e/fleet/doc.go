// Package fleet is the harness of Cairn's system tests and of `make demo`: it builds two
// releases of the OS with Cairn's binaries (cached by their inputs), boots them in qemu (UEFI,
// TCG), hands them first-boot configs over fw_cfg, drives them over ssh (a user-mode port
// forward on the host's loopback) and serves them what a fleet has: an etcd, the update
// service (cairn-console, in-process), a release server. It links no testing code: the tests reach it through fleettest.
package fleet
