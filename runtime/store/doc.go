// Package store is rkt's local image store: content-addressed blobs, image metadata, and each
// ACI or OCI layer extracted once, read-only, into a tree that pods stack as overlayfs lower dirs.
// Any number of rkt processes may use one store at the same time; file locks keep them apart,
// and every change becomes visible by a rename, so a process killed at any moment leaves
// nothing half-made behind (only temporary files, which the next Open removes).
//
// On-disk layout under the data directory (--dir, /var/lib/rkt by default):
//
//	cas/lock                   store-wide flock: shared while importing or touching an image,
//	                           exclusive while removing (rm, gc) and while clearing tmp/
//	cas/blob/sha512/<hex>      an ACI as fetched (gzip, bzip2, xz or plain; older stores kept it
//	                           plain); its image ID "sha512-<hex>" is the digest of the tar inside
//	cas/blob/sha256/<hex>      an OCI blob by digest: manifest, config, compressed layer
//	cas/tree/sha512-<hex>/     an extracted ACI: manifest and rootfs/ (the lower dir)
//	cas/tree/sha256-<hex>/     an extracted OCI layer, named by its diffID (sha256 of the
//	                           uncompressed tar); the directory itself is the lower dir, with
//	                           whiteouts as overlayfs expects them (0/0 char devices, opaque xattr)
//	cas/treelock/<tree>.lock   per-tree flock, held while the tree is being made
//	cas/image/<id>.json        one image's metadata (name, labels, import and last-use time,
//	                           source, trust, the blobs and trees it uses); "sha256:" is stored
//	                           as "sha256-" in the file name
//	cas/tmp/                   imports in flight: blobs being written, trees being extracted
//
// An import writes blobs and trees under tmp/, renames each into place once complete and
// verified, and writes the image's metadata last (temp file + rename + fsync): an image exists
// exactly when its metadata file does. Trees and blobs are not fsynced one by one (that would
// double an import's time); `rkt image verify` re-checks them against their digests.
// Two images sharing a layer share its blob and tree. Remove and GC delete an image's metadata
// first, then every blob and tree that no remaining image references.
//
// Archives are untrusted: an import is bounded by its Limits (size, names, compression
// ratio), checked as each entry is read and before it is written, and an import that goes
// past one is abandoned like any failed import, leaving nothing.
package store
