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
		err = json.NewEncoder(os.Stdout).Encode(im)
	} else {
		_, err = fmt.Printf("aci            %s (%s %s:%s)\n"+
			"signature      %s\n"+
			"signing key    %s (fingerprint %s)\n"+
			"oci layout     %s (%s)\n"+
			"oci archive    %s\n"+
			"docker archive %s (%s)\n",
			im.ACI, im.ACIID[:7+32], fixture.ACIName, fixture.ACIVersion,
			im.ASC,
			im.PublicKeyPath, im.Fingerprint,
			im.OCILayout, fixture.OCIName,
			im.OCIArchive,
			im.DockerArchive, fixture.DockerName)
	}
	// The paths are the result: a caller that cannot read them has none.
	if err != nil {
		fmt.Fprintf(os.Stderr, "cairn-mkimage: writing the paths: %v\n", err)
		os.Exit(1)
	}
}
