// Command cairn-mkimage writes the busybox fixture images (a signed ACI, an OCI image layout,
// an OCI archive and a docker-archive) into a directory, for `make demo` and manual testing.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/cairn-os/cairn/runtime/fixture"
)

func main() {
	out := flag.String("o", "images", "directory to write the images into")
	asJSON := flag.Bool("json", false, "print the paths as JSON")
	flag.Parse()
	im, err := fixture.Build(*out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cairn-mkimage: %v\n", err)
		os.Exit(1)
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(im)
		return
	}
	fmt.Printf("aci            %s (%s %s:%s)\n", im.ACI, im.ACIID[:7+32], fixture.ACIName, fixture.ACIVersion)
	fmt.Printf("signature      %s\n", im.ASC)
	fmt.Printf("signing key    %s (fingerprint %s)\n", im.PublicKeyPath, im.Fingerprint)
	fmt.Printf("oci layout     %s (%s)\n", im.OCILayout, fixture.OCIName)
	fmt.Printf("oci archive    %s\n", im.OCIArchive)
	fmt.Printf("docker archive %s (%s)\n", im.DockerArchive, fixture.DockerName)
}
