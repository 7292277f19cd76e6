package initramfs

// Paths inside the initramfs, shared by the builder (which packs them) and the init.
const (
	// ModuleList lists the modules to load, one absolute path a line, dependencies first.
	ModuleList = "/lib/modules/cairn-early.list"
	// ExtraCmdline is appended to /proc/cmdline: a PXE initramfs carries its /usr parameters
	// here, since -append / iPXE command lines are typed by people.
	ExtraCmdline = "/etc/cairn/cmdline"
	// RootSkeleton, inside /usr, is the initial content of ROOT (etc, var, the merged-/usr
	// symlinks): early boot copies it into an empty ROOT, or into a PXE boot's tmpfs root.
	RootSkeleton = "/usr/share/cairn/root"
	// FirstBootHook, inside the new root's /usr, runs once before switching root when
	// present, with --root=<new root>. The installer ships it. A failure stops the boot.
	FirstBootHook = "/usr/lib/cairn/first-boot"
	// BootInfo, in /run (kept across switch root), tells the booted system which partition
	// early boot took /usr from: CAIRN_USR_PARTUUID=<guid>, CAIRN_SLOT=A|B (absent for PXE),
	// CAIRN_USR_ROOTHASH=<hex>. A slot-neutral UKI (cairn.usr=auto) names no partition, so
	// the update engine learns the active slot here.
	BootInfo = "/run/cairn/boot.env"
	// OEMMount is where early boot mounts the OEM partition (read-only) for the hook.
	OEMMount = "/usr/share/oem"
)
