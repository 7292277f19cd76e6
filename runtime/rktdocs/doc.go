// Package rktdocs replays the command examples of rkt's documentation (Documentation/subcommands,
// Documentation/networking, commands.md, running-docker-images.md and the signing guide of
// rkt 1.30) against Cairn's rkt binary, as a CoreOS user would try them. It has no code of its
// own: its tests are the replay.
//
// inventory_test.go lists every example of those documents: the case that runs it, or why it
// cannot run offline and which test covers it instead. The root-tier test (TestDocReplay) builds
// local images standing in for the documents' images (ACIs with appc's actool, OCI images with
// umoci), loads them with `rkt fetch` so that the examples' names resolve from the store, runs
// each example with the real binary in a private network and mount namespace, and checks what
// the documents show: exit statuses, output lines, columns, states, with times and UUIDs matched
// by pattern. A difference fails the test unless README.md's "Compatibility, and where Cairn
// differs" names it; those the cases accept are in the differences table, each with the words
// of its README entry.
package rktdocs
