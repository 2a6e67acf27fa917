package cni

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// staleProbeTimeout bounds the dial that tells a live server from a stale socket file.
const staleProbeTimeout = time.Second

// listenUnix creates a unix socket at path that only root can use. The socket is
// bound under a temporary name, restricted to 0600 and then renamed into place, so
// no other user can connect in the moment between bind and chmod. A stale socket
// left by a dead agent is replaced; a live one (something answers) or a path that
// is not a socket makes it fail. It returns the listener and the file it created.
func listenUnix(path string) (*net.UnixListener, os.FileInfo, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("CNI socket %s: create directory: %w", path, err)
	}
	if err := removeStale(path); err != nil {
		return nil, nil, err
	}

	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("CNI socket %s: remove leftover %s: %w", path, tmp, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("CNI socket %s: %w", path, err)
	}
	// The file is renamed below, so closing the listener must not unlink by the old name.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, os.FileInfo, error) {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, nil, fmt.Errorf("CNI socket %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return ln, fi, nil
}

// removeStale removes a socket file nobody answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("CNI socket %s: %w", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("CNI socket %s: path exists and is not a socket (%s)", path, fi.Mode().Type())
	}
	conn, err := net.DialTimeout("unix", path, staleProbeTimeout)
	if err == nil {
		_ = conn.Close()
		return fmt.Errorf("CNI socket %s: another server is listening on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("CNI socket %s: cannot tell whether another server is listening: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("CNI socket %s: remove stale socket: %w", path, err)
	}
	return nil
}

// removeIfSame removes path if it is still the socket file we created, so a server
// shutting down never deletes a newer server's socket.
func removeIfSame(path string, ours os.FileInfo) {
	if fi, err := os.Lstat(path); err == nil && os.SameFile(fi, ours) {
		_ = os.Remove(path)
	}
}
