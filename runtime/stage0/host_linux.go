package stage0

import "github.com/cairn-os/cairn/runtime/stage1"

// checkHost checks that this mount namespace can give a pod cgroups (ip netns exec mounts a
// sysfs without them over /sys).
func checkHost() error { return stage1.CheckCgroups() }
