// Package stage1 turns a prepared pod (its appc pod manifest and options) into libcontainer
// containers and supervises them: one container per app, each with its own mount namespace and
// root, all sharing the pod's network, IPC and UTS namespaces, like rkt's stage1/stage2 split.
//
// The policy is data: Spec builds an OCI runtime spec per app and OverlayMount the mount of its
// root on the host (an internal/mount value), so unit tests compare them; the _linux.go files
// apply them.
package stage1

import "errors"

// AnnotationImageID carries an image's store ID in a pod manifest; for OCI images it is the
// only place the real ID is kept (appc's image ID field only holds sha512 hashes).
const AnnotationImageID = "cairn-os.org/image-id"

// DefaultPath is the PATH an app gets when its image sets none (appc's executor default).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ExitFailure is rkt's exit status for a failure of its own, in stage0 or stage1 (a bad flag,
// an image that cannot be fetched, a pod that cannot be set up or entered), as opposed to an
// app's exit status, which rkt run and rkt enter pass on. It is rkt's 254, which scripts
// written for rkt tell apart from their apps' statuses.
const ExitFailure = 254

// ErrNoExec says an image names no command and none was given.
var ErrNoExec = errors.New("image has no exec/entrypoint; pass --exec")
