package sim

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Host socket set-up shared by VPP's memif and vhost-user code paths:
// clib_socket_init's name parsing, stale-file handling and folder creation.

// socketPrefixIsValid is clib_socket_prefix_is_valid: only the prefixes
// clib_socket_init skips. "@name" is not one of them in 25.10, so it is a
// relative file name despite what memif.api says.
func socketPrefixIsValid(s string) bool {
	return strings.HasPrefix(s, "unix:") || strings.HasPrefix(s, "tcp:") || strings.HasPrefix(s, "abstract:")
}

// recursiveMkdir is vlib_unix_recursive_mkdir: every prefix ending before
// a '/' then the whole path, mode 0755, EEXIST ignored even for a file.
func recursiveMkdir(path string) error {
	for i := 1; i < len(path); i++ {
		if path[i] == '/' {
			if err := syscall.Mkdir(path[:i], 0o755); err != nil && !errors.Is(err, syscall.EEXIST) {
				return err
			}
		}
	}
	if err := syscall.Mkdir(path, 0o755); err != nil && !errors.Is(err, syscall.EEXIST) {
		return err
	}
	return nil
}

// memifListen is clib_socket_init for a memif listener (local only,
// server, SOCK_SEQPACKET). It keeps clib_socket_init's quirks: a "unix:"
// prefix is skipped for parsing but the bound path is copied from the
// unskipped text, an abstract name's length counts its trailing NUL, and a
// stale socket file nobody listens on is replaced. With noHost it only
// parses the name, as far as that needs no host, and listens nowhere: the
// listener is nil.
func memifListen(config string, noHost bool) (*hostListener, error) {
	p, abstract := config, false
	switch {
	case strings.HasPrefix(p, "unix:"):
		p = p[len("unix:"):]
	case strings.HasPrefix(p, "abstract:"):
		p, abstract = p[len("abstract:"):], true
	}
	name, rest := socketName(p)
	if abstract {
		var err error
		if rest, err = netnsOptions(rest, !noHost); err != nil {
			return nil, err
		}
	}
	if rest != "" {
		return nil, fmt.Errorf("unknown input `%s'", rest)
	}
	if abstract {
		if len(name)+1 > 106 {
			return nil, fmt.Errorf("socket name %q too long", name)
		}
		if noHost {
			return nil, nil
		}
		return listenHost("unixpacket", "@"+name+"\x00")
	}
	if len(name)+1 > 107 {
		return nil, fmt.Errorf("file path %q too long", name)
	}
	if noHost {
		return nil, nil
	}
	path := config[:min(len(name)+1, len(config))]
	if i := strings.IndexByte(path, 0); i >= 0 {
		path = path[:i]
	}
	if err := replaceStaleSocket(path); err != nil {
		return nil, err
	}
	ln, err := listenHost("unixpacket", path)
	if err != nil {
		return nil, err
	}
	// allow_group_write: bound under umask(S_IWOTH), so mode 0775.
	if err := os.Chmod(path, 0o775); err != nil {
		ln.close()
		return nil, err
	}
	return ln, nil
}

// socketName is _clib_socket_get_string for a non-host name.
func socketName(p string) (name, rest string) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '/' || c == '-' || c == '.' || c == '_'
		if !ok {
			return p[:i], p[i:]
		}
	}
	return p, ""
}

// netnsOptions checks the ",netns_name=" / ",netns_pid=" options of an
// abstract socket the way clib_socket_init opens them (the opening only
// when open is set). The simulator does not enter the namespace: it
// listens in its own.
func netnsOptions(rest string, open bool) (string, error) {
	for strings.HasPrefix(rest, ",") {
		opt := rest[1:]
		var path string
		switch {
		case strings.HasPrefix(opt, "netns_name="):
			var n string
			n, rest = socketName(opt[len("netns_name="):])
			path = n
			if !strings.HasPrefix(n, "/") {
				path = "/var/run/netns/" + n
			}
		case strings.HasPrefix(opt, "netns_pid="):
			digits := strings.TrimLeft(opt[len("netns_pid="):], "0123456789")
			pid := opt[len("netns_pid=") : len(opt)-len(digits)]
			if pid == "" {
				return "", errors.New("invalid pid")
			}
			rest, path = digits, "/proc/"+pid+"/ns/net"
		default:
			return rest, nil
		}
		if !open {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("open('%s'): %w", path, err)
		}
		_ = f.Close()
	}
	return rest, nil
}

// replaceStaleSocket is clib_socket_init's check of an existing file: a
// socket someone accepts on (or of another type) is an active listener, a
// dead socket is unlinked, anything else is refused.
func replaceStaleSocket(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("file '%s' already exists", path)
	}
	if err := probeUnix(path); !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("active listener on '%s'", path)
	}
	if err := syscall.Unlink(path); err != nil {
		return fmt.Errorf("unlink ('%s'): %w", path, err)
	}
	return nil
}

// cString is what VPP reads from a fixed-size string field: up to the
// first NUL, at most max bytes.
func cString(s string, max int) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	if len(s) > max {
		s = s[:max]
	}
	return s
}
