package ota

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/bosunhq/bosun/pkg/keys"
)

// ErrUnsafeBundle is wrapped by every refusal of a bundle's content: an
// entry that would escape the slot, a file type a slot may not hold, or a
// bundle past its limits. The slot being unpacked is thrown away.
var ErrUnsafeBundle = errors.New("unsafe bundle")

// maxTrailer bounds what may follow the end of the tar inside the gzip
// stream: the padding of the last record (tar -b 2048 pads to 1 MiB).
const maxTrailer = 1 << 20

// unpackLimits bound what one bundle may expand to.
type unpackLimits struct {
	maxBytes   int64 // sum of regular file sizes
	maxEntries int   // tar headers, directories included
}

func unsafef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsafeBundle, fmt.Sprintf(format, args...))
}

// cleanEntryName returns the slash-separated relative path of a tar entry,
// or an error when it is absolute or has a ".." component.
func cleanEntryName(name string) (string, error) {
	if name == "" {
		return "", unsafef("an entry has no name")
	}
	if strings.HasPrefix(name, "/") || filepath.IsAbs(name) || strings.Contains(name, "\\") {
		return "", unsafef("entry %q has an absolute path", name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", unsafef("entry %q has a .. component", name)
		}
	}
	clean := path.Clean(name)
	if clean == "." {
		return ".", nil
	}
	return clean, nil
}

// unpack extracts the tar.gz from r into dir, which must not exist. It
// refuses (ErrUnsafeBundle) absolute names, "..", symlinks whose target is
// absolute or leaves dir (followed through the bundle's other symlinks),
// entries that clash with earlier ones, hard links to anything but a regular file already
// extracted, entries below a symlink, device files, FIFOs and sockets, and
// more than lim allows or more than maxTrailer bytes after the tar. Files are written with their permission bits (no
// setuid, setgid or sticky) and synced, and so is every directory. On error
// the caller removes dir.
func unpack(r io.Reader, dir string, lim unpackLimits) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return unsafef("not a gzip stream: %v", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	var (
		entries int
		total   int64
		links   = map[string]string{} // symlinks extracted so far: name -> target
		walked  = map[string]bool{}   // paths a symlink's resolution took to be no symlink
		regular = map[string]bool{}   // regular files extracted so far
		dirs    = []string{dir}
	)
	belowLink := func(name string) bool {
		for p := path.Dir(name); p != "." && p != "/"; p = path.Dir(p) {
			if _, ok := links[p]; ok {
				return true
			}
		}
		return false
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return unsafef("reading the tar stream: %v", err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		entries++
		if entries > lim.maxEntries {
			return unsafef("more than %d entries", lim.maxEntries)
		}
		name, err := cleanEntryName(h.Name)
		if err != nil {
			return err
		}
		if name == "." {
			continue
		}
		if belowLink(name) {
			return unsafef("entry %q lies below a symlink", h.Name)
		}
		if _, ok := links[name]; ok || regular[name] {
			return unsafef("entry %q appears twice", h.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return clash(h.Name, err)
		}
		mode := os.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return clash(h.Name, err)
			}
			if err := os.Chmod(target, mode|0o700); err != nil {
				return err
			}
			dirs = append(dirs, target)
		case tar.TypeReg, tar.TypeRegA:
			if h.Size > lim.maxBytes-total {
				return unsafef("expands past %d bytes (entry %q)", lim.maxBytes, h.Name)
			}
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return clash(h.Name, err)
			}
			n, err := io.Copy(f, io.LimitReader(tr, lim.maxBytes-total+1))
			total += n
			if err == nil && total > lim.maxBytes {
				err = unsafef("expands past %d bytes (entry %q)", lim.maxBytes, h.Name)
			}
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				if !errors.Is(err, ErrUnsafeBundle) {
					err = unsafef("reading entry %q: %v", h.Name, err)
				}
				return err
			}
			regular[name] = true
		case tar.TypeSymlink:
			t := h.Linkname
			if t == "" || strings.HasPrefix(t, "/") || filepath.IsAbs(t) {
				return unsafef("symlink %q points to the absolute path %q", h.Name, t)
			}
			if !resolvesInside(links, walked, name, t) {
				return unsafef("symlink %q points out of the slot (%q)", h.Name, t)
			}
			links[name] = t
			if walked[name] {
				// An earlier symlink was checked taking this path for a
				// directory; through this one it may now lead out.
				for n, lt := range links {
					if !resolvesInside(links, walked, n, lt) {
						return unsafef("symlink %q makes symlink %q point out of the slot", h.Name, n)
					}
				}
			}
			if err := os.Symlink(t, target); err != nil {
				return clash(h.Name, err)
			}
		case tar.TypeLink:
			t, err := cleanEntryName(h.Linkname)
			if err != nil {
				return unsafef("hard link %q: %v", h.Name, err)
			}
			if !regular[t] {
				return unsafef("hard link %q points to %q, not a file of the bundle", h.Name, h.Linkname)
			}
			if err := os.Link(filepath.Join(dir, filepath.FromSlash(t)), target); err != nil {
				return clash(h.Name, err)
			}
			regular[name] = true
		default:
			return unsafef("entry %q has type %q (device files, FIFOs and the like are refused)", h.Name, string(h.Typeflag))
		}
	}
	// Read what follows the tar end (padding, at most maxTrailer bytes)
	// to the end of the gzip stream, so that its checksum is checked; the
	// caller hashes the compressed bytes that remain.
	n, err := io.Copy(io.Discard, io.LimitReader(zr, maxTrailer+1))
	if err != nil {
		return unsafef("reading the gzip stream: %v", err)
	}
	if n > maxTrailer {
		return unsafef("more than %d bytes after the end of the tar", maxTrailer)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := keys.SyncDir(dirs[i]); err != nil {
			return err
		}
	}
	return syncTree(dir)
}

// maxLinkHops bounds the symlinks followed to resolve one symlink's
// target, as the kernel's (Linux: 40) does.
const maxLinkHops = 40

// resolvesInside reports whether the symlink name -> t, followed through
// the symlinks extracted so far (links) the way the kernel follows them,
// stays in the slot at every step: when c is a symlink to ".", "c/.." is
// the slot's parent, though path.Join makes it ".". Every path the walk
// takes to be no symlink is added to walked, so that a later symlink
// there (which would change this one's meaning) is refused.
func resolvesInside(links map[string]string, walked map[string]bool, name, t string) bool {
	var stack []string
	if d := path.Dir(name); d != "." {
		stack = strings.Split(d, "/")
	}
	hops := 0
	var walk func(t string) bool
	walk = func(t string) bool {
		for _, c := range strings.Split(t, "/") {
			switch c {
			case "", ".":
				continue
			case "..":
				if len(stack) == 0 {
					return false
				}
				stack = stack[:len(stack)-1]
				continue
			}
			stack = append(stack, c)
			p := strings.Join(stack, "/")
			next, ok := links[p]
			if !ok {
				walked[p] = true
				continue
			}
			if hops++; hops > maxLinkHops {
				return false
			}
			stack = stack[:len(stack)-1]
			if !walk(next) { // next is relative: absolute ones were refused
				return false
			}
		}
		return true
	}
	return walk(t)
}

// clash translates the errors of creating an entry that the bundle's own
// earlier entries cause (a name that exists, a file where a directory
// must be) into ErrUnsafeBundle; others (a full disk) stay as they are.
func clash(name string, err error) error {
	if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTDIR) {
		return unsafef("entry %q clashes with an earlier entry: %v", name, err)
	}
	return err
}

// syncTree syncs every directory below root (MkdirAll makes some that are
// not tar entries).
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return keys.SyncDir(p)
		}
		return nil
	})
}

// copyTree copies the regular files, directories and symlinks of src into
// dst (which must not exist), syncing each; ota.create_snapshot uses it.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(out, info.Mode().Perm()|0o700); err != nil {
				return err
			}
			return nil
		case d.Type()&os.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(t, out)
		case d.Type().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
			if err != nil {
				return err
			}
			_, err = io.Copy(f, in)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		}
		return fmt.Errorf("copying %s: unsupported file type %s", p, d.Type())
	})
}
