// Command cairn-payload makes signing keys and builds, signs, verifies and inspects Cairn
// update payloads.
package main

import (
	"context"
	"os"

	"github.com/cairn-os/cairn/tools/payloadtool"
)

func main() {
	os.Exit(payloadtool.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
