package podnet

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// dumpRetries bounds how often a netlink dump interrupted by a concurrent
// change is read again before giving up.
const dumpRetries = 5

// CheckNetns reports whether path names an existing network namespace.
func CheckNetns(path string) error {
	ns, err := openNetns(path)
	if err != nil {
		return err
	}
	return ns.Close()
}

// openNetns opens path and makes sure it is a network namespace, not just any
// file: a bind-mount target left behind after the namespace was unmounted is
// a plain empty file.
func openNetns(path string) (netns.NsHandle, error) {
	if path == "" {
		return netns.None(), errors.New("network namespace path is empty")
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return netns.None(), fmt.Errorf("network namespace %s: %w", path, ErrNetnsNotFound)
		}
		return netns.None(), fmt.Errorf("network namespace %s: %w", path, err)
	}
	// NS_GET_NSTYPE (Linux 4.11) fails with ENOTTY on anything but an nsfs file.
	kind, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil || kind != unix.CLONE_NEWNET {
		_ = unix.Close(fd)
		return netns.None(), fmt.Errorf("network namespace %s: %w", path, ErrNotNetns)
	}
	return netns.NsHandle(fd), nil
}

// nsHandle is a netlink handle whose sockets live in one namespace, so it
// works from any thread.
type nsHandle struct {
	*netlink.Handle
	ns   netns.NsHandle
	path string
}

// openAt opens a route netlink handle inside the namespace at path.
func openAt(ctx context.Context, path string) (*nsHandle, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", path, err)
	}
	ns, err := openNetns(path)
	if err != nil {
		return nil, err
	}
	h, err := handleAt(ns)
	if err != nil {
		_ = ns.Close()
		return nil, fmt.Errorf("network namespace %s: netlink handle: %w", path, err)
	}
	if err := applyDeadline(ctx, h); err != nil {
		h.Close()
		_ = ns.Close()
		return nil, fmt.Errorf("network namespace %s: %w", path, err)
	}
	return &nsHandle{Handle: h, ns: ns, path: path}, nil
}

func (h *nsHandle) Close() {
	h.Handle.Close()
	_ = h.ns.Close()
}

// handleAt opens a route netlink handle whose socket lives in ns. A socket
// belongs to the namespace of the thread that creates it, so a goroutine of
// its own locks a thread, enters ns, creates the socket and returns. Should
// the way back fail, it ends still locked and the runtime retires the thread
// instead of reusing it in the wrong namespace (netlink.NewHandleAt would
// unlock it regardless).
func handleAt(ns netns.NsHandle) (*netlink.Handle, error) {
	type result struct {
		h   *netlink.Handle
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("current namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			// A failed setns leaves the thread where it was.
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter namespace: %w", err)}
			return
		}
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if backErr := netns.Set(orig); backErr != nil {
			if h != nil {
				h.Close()
			}
			done <- result{err: fmt.Errorf("return to own namespace: %w", backErr)}
			return // still locked: the thread dies with this goroutine
		}
		runtime.UnlockOSThread()
		done <- result{h: h, err: err}
	}()
	r := <-done
	return r.h, r.err
}

// openHost opens a route netlink handle in the caller's (the agent's) namespace.
func openHost(ctx context.Context) (*netlink.Handle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("host namespace: netlink handle: %w", err)
	}
	if err := applyDeadline(ctx, h); err != nil {
		h.Close()
		return nil, fmt.Errorf("host namespace: %w", err)
	}
	return h, nil
}

// applyDeadline turns ctx's deadline into a socket timeout, since netlink
// calls take no context.
func applyDeadline(ctx context.Context, h *netlink.Handle) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		return nil
	}
	left := time.Until(deadline)
	if left < time.Millisecond {
		return context.DeadlineExceeded
	}
	if err := h.SetSocketTimeout(left); err != nil {
		return fmt.Errorf("netlink socket timeout: %w", err)
	}
	return nil
}

// dump runs a netlink dump, reading it again when a concurrent change
// interrupted it, as the kernel asks (NLM_F_DUMP_INTR).
func dump[T any](list func() ([]T, error)) ([]T, error) {
	var err error
	for range dumpRetries {
		var out []T
		out, err = list()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, err
}

// linkByName returns the link, or an error wrapping ErrLinkNotFound.
func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("link %s %w", name, ErrLinkNotFound)
		}
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	return l, nil
}
