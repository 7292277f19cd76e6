// Command flannel is the flannel CNI plugin. See flannel/README.md.
package main

import "github.com/cairn-os/cairn/flannel/cni"

func main() { cni.Main() }
