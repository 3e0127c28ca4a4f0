package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/zip"
)

// ProxyModule is one module version to serve from a file GOPROXY.
type ProxyModule struct {
	Dir     string // the module's directory (holding its go.mod)
	Version string // a semantic version such as v0.1.0
}

// WriteModuleProxy lays out mods in dir as a module proxy (the GOPROXY
// protocol, the layout `go mod download` keeps in its cache): for each
// module $path/@v/list, $version.info, $version.mod and $version.zip. The
// zip is what the go command would make from a tag of the repository:
// golang.org/x/mod/zip leaves out nested modules, vendor directories and
// VCS metadata, and refuses files a module zip may not hold. It returns the
// GOPROXY value (file://dir).
//
// The zips are made from the working tree, not a commit: a file that is
// not committed yet is served, so run the check on a clean checkout before
// tagging (CI does).
func WriteModuleProxy(dir string, mods []ProxyModule) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	lists := map[string][]string{} // escaped path → versions
	for _, m := range mods {
		gomod, err := os.ReadFile(filepath.Join(m.Dir, "go.mod"))
		if err != nil {
			return "", err
		}
		f, err := modfile.ParseLax("go.mod", gomod, nil)
		if err != nil || f.Module == nil {
			return "", fmt.Errorf("%s/go.mod: no module line (%v)", m.Dir, err)
		}
		mv := module.Version{Path: f.Module.Mod.Path, Version: m.Version}
		if err := module.Check(mv.Path, mv.Version); err != nil {
			return "", err
		}
		esc, err := module.EscapePath(mv.Path)
		if err != nil {
			return "", err
		}
		vdir := filepath.Join(abs, filepath.FromSlash(esc), "@v")
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return "", err
		}
		base := filepath.Join(vdir, mv.Version)
		info, _ := json.Marshal(struct {
			Version string
			Time    time.Time
		}{mv.Version, time.Now().UTC().Truncate(time.Second)})
		if err := os.WriteFile(base+".info", info, 0o644); err != nil {
			return "", err
		}
		if err := os.WriteFile(base+".mod", gomod, 0o644); err != nil {
			return "", err
		}
		zf, err := os.Create(base + ".zip")
		if err != nil {
			return "", err
		}
		err = zip.CreateFromDir(zf, mv, m.Dir)
		if cerr := zf.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("zipping %s: %w", mv, err)
		}
		lists[esc] = append(lists[esc], mv.Version)
	}
	for esc, versions := range lists {
		semver.Sort(versions)
		list := strings.Join(slices.Compact(versions), "\n") + "\n"
		if err := os.WriteFile(filepath.Join(abs, filepath.FromSlash(esc), "@v", "list"), []byte(list), 0o644); err != nil {
			return "", err
		}
	}
	return "file://" + filepath.ToSlash(abs), nil
}
