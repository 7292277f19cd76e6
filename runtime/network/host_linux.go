package network

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/mount"
)

// threadNetnsID names the calling thread's network namespace as /proc/PID/ns/net does.
func threadNetnsID() (string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	id, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		return "", fmt.Errorf("own network namespace: %w", err)
	}
	return id, nil
}

// netnsID names the network namespace bind-mounted at path.
func netnsID(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", fmt.Errorf("network namespace %s: %w", path, err)
	}
	return fmt.Sprintf("net:[%d]", st.Ino), nil
}

// pinNetns bind-mounts the calling thread's network namespace at path, a new file, and names it.
func pinNetns(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return "", fmt.Errorf("pin the host network namespace: %w", err)
	}
	f.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	id, err := threadNetnsID()
	if err == nil {
		err = mount.Mount{Source: "/proc/thread-self/ns/net", Target: path, Flags: unix.MS_BIND}.Apply()
	}
	if err != nil {
		if rerr := os.Remove(path); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return "", fmt.Errorf("pin the host network namespace at %s: %w", path, err)
	}
	return id, nil
}

// inNetns runs fn in the network namespace bind-mounted at path, or here when path is "". It
// does so on an OS thread of its own that never goes back to the scheduler (it exits with its
// goroutine), so that nothing else runs there by accident; the processes fn starts (the CNI
// plugins) are born in that namespace, and the netlink and nftables sockets it opens are
// bound to it.
func inNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("host network namespace: %w", err)
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter the host network namespace %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// removeHostLinks deletes the host ends of the attachment's veths (and so the pod ends with
// them) and the routes they carry to the pod's addresses, in the calling thread's network
// namespace. Links already gone are no error.
func removeHostLinks(a Attachment) error {
	if len(a.HostLinks) == 0 {
		return nil
	}
	links := map[string]netlink.Link{}
	var found []hostLink
	for _, h := range a.HostLinks {
		l, err := netlink.LinkByName(h.Name)
		if _, ok := errors.AsType[netlink.LinkNotFoundError](err); ok {
			continue
		}
		if err != nil {
			return fmt.Errorf("host link %s: %w", h.Name, err)
		}
		links[h.Name] = l
		found = append(found, hostLink{Name: h.Name, Type: l.Type(), MAC: l.Attrs().HardwareAddr.String(), Index: l.Attrs().Index})
	}
	var errs []error
	for _, own := range ownLinks(a.HostLinks, found) {
		for _, dst := range hostRoutes(a.IPs) {
			family := netlink.FAMILY_V4
			if dst.IP.To4() == nil {
				family = netlink.FAMILY_V6
			}
			// An interrupted dump still lists what it got; the rest goes with the link.
			routes, err := netlink.RouteListFiltered(family, &netlink.Route{LinkIndex: own.Index, Dst: dst}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_DST)
			if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
				errs = append(errs, fmt.Errorf("routes to %s on %s: %w", dst, own.Name, err))
			}
			for _, r := range routes {
				if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
					errs = append(errs, fmt.Errorf("route to %s on %s: %w", dst, own.Name, err))
				}
			}
		}
		if err := netlink.LinkDel(links[own.Name]); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete host link %s: %w", own.Name, err))
		}
	}
	return errors.Join(errs...)
}
