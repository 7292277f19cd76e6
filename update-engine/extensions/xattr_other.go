//go:build !linux

package extensions

// strictFalse: extended attributes are read on Linux only, where systemd-sysext runs.
func strictFalse(string) bool { return false }
