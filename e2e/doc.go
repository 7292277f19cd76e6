// Package e2e holds Cairn's end-to-end tests: an install from a PXE-booted live system, a pod
// unit under systemd, two hosts on one flannel overlay, an update with reboots one at a time
// under locksmith's lock, and a bad update rolled back by boot counting, each on hosts that
// fleet boots in qemu. Nothing below e2e imports it; it may use every part and tools.
package e2e
