package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// repoModulePrefix is the path prefix of this repository's modules.
const repoModulePrefix = "github.com/bosunhq/bosun/"

// layout is what TestModuleLayout checks: go.work and the go.mod of each
// module it uses.
type layout struct {
	work *modfile.WorkFile
	mods map[string]*modfile.File // by directory as go.work names it ("./pkg")
}

func readLayout(tb testing.TB, root string) layout {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		tb.Fatal(err)
	}
	work, err := modfile.ParseWork("go.work", data, nil)
	if err != nil {
		tb.Fatal(err)
	}
	l := layout{work: work, mods: map[string]*modfile.File{}}
	for _, u := range work.Use {
		p := filepath.Join(root, u.Path, "go.mod")
		data, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		f, err := modfile.Parse(p, data, nil)
		if err != nil {
			tb.Fatal(err)
		}
		l.mods[u.Path] = f
	}
	return l
}

// check lists what would stop a tagged release from working for someone
// outside this repository, or the workspace from building what is here:
//   - a replace directive in a go.mod (dependents ignore it; go install
//     refuses a module that has one);
//   - a requirement of one of this repository's modules at anything but a
//     release version (v0.0.0, a pseudo-version or a pre-release cannot be
//     a tag pkg/vX.Y.Z);
//   - two modules requiring different versions of the same module here;
//   - go.work not pointing each required version at the working tree, or
//     replacing something nobody requires.
func (l layout) check() []error {
	var errs []error
	dirOf := map[string]string{} // module path → go.work directory
	for dir, f := range l.mods {
		dirOf[f.Module.Mod.Path] = dir
	}
	required := map[string]string{} // module path → version
	for dir, f := range l.mods {
		for _, r := range f.Replace {
			errs = append(errs, fmt.Errorf("%s/go.mod replaces %s: dependents ignore replace directives and go install refuses them; use go.work", dir, r.Old.Path))
		}
		for _, r := range f.Require {
			p, v := r.Mod.Path, r.Mod.Version
			if !strings.HasPrefix(p, repoModulePrefix) {
				continue
			}
			if _, ok := dirOf[p]; !ok {
				errs = append(errs, fmt.Errorf("%s/go.mod requires %s, which go.work does not use", dir, p))
			}
			if !semver.IsValid(v) || semver.Prerelease(v) != "" || module.IsPseudoVersion(v) || v == "v0.0.0" {
				errs = append(errs, fmt.Errorf("%s/go.mod requires %s %s: want a release version that is (or will be) a tag", dir, p, v))
			}
			if old, ok := required[p]; ok && old != v {
				errs = append(errs, fmt.Errorf("%s is required at both %s and %s: require one version everywhere", p, old, v))
			}
			required[p] = v
		}
	}
	replaced := map[string]bool{}
	for _, r := range l.work.Replace {
		p, v := r.Old.Path, r.Old.Version
		replaced[p+"@"+v] = true
		switch want, ok := required[p]; {
		case !ok:
			errs = append(errs, fmt.Errorf("go.work replaces %s, which no module requires", p))
		case v != want:
			errs = append(errs, fmt.Errorf("go.work replaces %s %s, but the modules require %s", p, v, want))
		case filepath.Clean(r.New.Path) != filepath.Clean(dirOf[p]):
			errs = append(errs, fmt.Errorf("go.work replaces %s %s with %s, want %s", p, v, r.New.Path, dirOf[p]))
		}
	}
	for p, v := range required {
		if !replaced[p+"@"+v] {
			errs = append(errs, fmt.Errorf("go.work does not replace %s %s => %s: the workspace would fetch the published version", p, v, dirOf[p]))
		}
	}
	return errs
}

// TestModuleLayout keeps the module layout publishable (see layout.check
// and docs/releasing.md).
func TestModuleLayout(t *testing.T) {
	l := readLayout(t, Root(t))
	for _, err := range l.check() {
		t.Error(err)
	}
	if _, ok := l.mods["./pkg"]; !ok {
		t.Fatal("go.work does not use ./pkg")
	}
	if v := pkgVersion(t, l); v == "" {
		t.Error("device/go.mod does not require pkg")
	}
}

// TestModuleLayoutRefusals proves check finds each mistake it names.
func TestModuleLayoutRefusals(t *testing.T) {
	const good = `module github.com/bosunhq/bosun/device
go 1.26.0
require github.com/bosunhq/bosun/pkg v0.1.0
`
	const pkg = "module github.com/bosunhq/bosun/pkg\ngo 1.26.0\n"
	const work = "go 1.26.0\nuse (\n./pkg\n./device\n)\nreplace github.com/bosunhq/bosun/pkg v0.1.0 => ./pkg\n"
	for _, tc := range []struct {
		name, device, cloud, work, want string
	}{
		{name: "good", device: good, work: work},
		{name: "replace in go.mod", device: good + "replace github.com/bosunhq/bosun/pkg => ../pkg\n", work: work, want: "replaces github.com/bosunhq/bosun/pkg"},
		{name: "v0.0.0", device: strings.Replace(good, "v0.1.0", "v0.0.0", 1), work: strings.Replace(work, "v0.1.0", "v0.0.0", 1), want: "want a release version"},
		{name: "pseudo-version", device: strings.Replace(good, "v0.1.0", "v0.0.0-20260101000000-abcdefabcdef", 1), work: strings.Replace(work, "v0.1.0", "v0.0.0-20260101000000-abcdefabcdef", 1), want: "want a release version"},
		{name: "versions disagree", device: good, cloud: "module github.com/bosunhq/bosun/cloud\ngo 1.26.0\nrequire github.com/bosunhq/bosun/pkg v0.2.0\n",
			work: strings.Replace(work, "./device\n", "./device\n./cloud\n", 1), want: "required at both"},
		{name: "go.work misses the replace", device: good, work: "go 1.26.0\nuse (\n./pkg\n./device\n)\n", want: "go.work does not replace"},
		{name: "go.work replaces a stale version", device: good, work: strings.Replace(work, "pkg v0.1.0 =>", "pkg v0.0.9 =>", 1), want: "but the modules require v0.1.0"},
		{name: "go.work replaces elsewhere", device: good, work: strings.Replace(work, "=> ./pkg", "=> ../elsewhere", 1), want: "want ./pkg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := modfile.ParseWork("go.work", []byte(tc.work), nil)
			if err != nil {
				t.Fatal(err)
			}
			l := layout{work: w, mods: map[string]*modfile.File{}}
			for dir, src := range map[string]string{"./pkg": pkg, "./device": tc.device, "./cloud": tc.cloud} {
				if src == "" {
					continue
				}
				f, err := modfile.Parse(dir+"/go.mod", []byte(src), nil)
				if err != nil {
					t.Fatal(err)
				}
				l.mods[dir] = f
			}
			errs := l.check()
			if tc.want == "" {
				for _, err := range errs {
					t.Errorf("unexpected: %v", err)
				}
				return
			}
			var all []string
			for _, err := range errs {
				all = append(all, err.Error())
			}
			if !strings.Contains(strings.Join(all, "\n"), tc.want) {
				t.Errorf("errors %q lack %q", all, tc.want)
			}
		})
	}
}

// pkgVersion is the version of pkg that device/go.mod requires: the one a
// release tags as pkg/<version>.
func pkgVersion(tb testing.TB, l layout) string {
	tb.Helper()
	for _, r := range l.mods["./device"].Require {
		if r.Mod.Path == repoModulePrefix+"pkg" {
			return r.Mod.Version
		}
	}
	return ""
}

// TestModulesFromAProxy does what someone outside this repository does
// with a release: it serves pkg, device and cloud (at the version device
// requires of pkg, as a first release tags them all) from a file GOPROXY,
// then, in a directory outside the workspace with GOWORK=off and no
// replace directive, follows the README: go mod init, go get the worker
// SDK, the README's main.go, go build. It installs bosun-bridge,
// bosun-worker and the bosun CLI with go install from the same proxy, runs
// that bridge and the new worker against it, and calls the worker's method
// over the bridge's NATS. Nothing leaves the machine: third-party modules
// come from the local module cache, checked against the repository's
// go.sum files, and the checksum database is off.
func TestModulesFromAProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds from a module proxy")
	}
	root := Root(t)
	l := readLayout(t, root)
	version := pkgVersion(t, l)
	tmp := t.TempDir()

	var mods []ProxyModule
	for _, dir := range []string{"pkg", "device", "cloud"} {
		mods = append(mods, ProxyModule{Dir: filepath.Join(root, dir), Version: version})
	}
	proxy, err := WriteModuleProxy(filepath.Join(tmp, "proxy"), mods)
	if err != nil {
		t.Fatal(err)
	}

	// A user's environment: nothing of this machine's go env but the build
	// cache (for speed); a module cache of its own, so that nothing cached
	// from an earlier run is used instead of what the proxy serves.
	cache := GoEnv(t, "GOMODCACHE")
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + tmp, "GOENV=off", "GOWORK=off", "GOTOOLCHAIN=local",
		"GOCACHE=" + GoEnv(t, "GOCACHE"), "GOMODCACHE=" + filepath.Join(tmp, "modcache"), "GOFLAGS=-modcacherw -trimpath",
		"GOPROXY=" + proxy + ",file://" + filepath.ToSlash(filepath.Join(cache, "cache", "download")),
		"GOSUMDB=off", "GOBIN=" + filepath.Join(tmp, "bin")}
	for _, k := range []string{"CGO_ENABLED", "CC", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	project := filepath.Join(tmp, "hello-worker")
	if err := os.MkdirAll(project, 0o755); err != nil {
		t.Fatal(err)
	}
	goCmd := func(dir string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir, cmd.Env = dir, env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
		}
		t.Logf("go %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
		return string(out)
	}

	// The sums this repository recorded for third-party modules: a zip
	// from the cache that differs from them fails the build.
	var sums []byte
	for _, m := range []string{"device", "cloud"} {
		b, err := os.ReadFile(filepath.Join(root, m, "go.sum"))
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, b...)
	}

	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"go mod init example.com/hello-worker", "go get github.com/bosunhq/bosun/device/worker@latest", "go build"} {
		if !strings.Contains(string(readme), line) {
			t.Errorf("README.md lacks %q, the steps this test follows", line)
		}
	}
	main := readmeWorker(t, string(readme))

	goCmd(project, "mod", "init", "example.com/hello-worker")
	if err := os.WriteFile(filepath.Join(project, "go.sum"), sums, 0o644); err != nil {
		t.Fatal(err)
	}
	out := goCmd(project, "get", "github.com/bosunhq/bosun/device/worker@latest")
	if !strings.Contains(out, repoModulePrefix+"device "+version) {
		t.Errorf("go get did not add device %s:\n%s", version, out)
	}
	if err := os.WriteFile(filepath.Join(project, "main.go"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	goCmd(project, "build", "-o", filepath.Join(tmp, "bin", "hello-worker"), ".")
	gomod, _ := os.ReadFile(filepath.Join(project, "go.mod"))
	if strings.Contains(string(gomod), "replace") {
		t.Errorf("the project's go.mod has a replace directive:\n%s", gomod)
	}
	if !strings.Contains(string(gomod), repoModulePrefix+"device "+version) {
		t.Errorf("the project does not require device %s:\n%s", version, gomod)
	}
	goCmd(tmp, "install", repoModulePrefix+"device/cmd/bosun-bridge@"+version, repoModulePrefix+"device/cmd/bosun-worker@"+version)
	goCmd(tmp, "install", repoModulePrefix+"cloud/cmd/bosun@"+version)
	for _, b := range []string{"hello-worker", "bosun-bridge", "bosun-worker", "bosun"} {
		if _, err := os.Stat(filepath.Join(tmp, "bin", b)); err != nil {
			t.Errorf("no %s built: %v", b, err)
		}
	}

	// The installed bridge, with no cloud to reach (it keeps retrying), and
	// the new worker next to it.
	data := filepath.Join(tmp, "data")
	cloudKey := writeCloudPublicKey(t, tmp)
	bridgeEnv := append(env, "BOSUN_DATA_DIR="+data, "BOSUN_DEVICE_ID=proxy-1",
		fmt.Sprintf("BOSUN_CLOUD_URL=ws://127.0.0.1:%d/v1/device", FreePort(t)),
		"BOSUN_CLOUD_PUBLIC_KEY="+cloudKey, "BOSUN_NATS_LISTEN=127.0.0.1:0")
	bridge := StartProcess(t, tmp, "bosun-bridge", bridgeEnv, filepath.Join(tmp, "bin", "bosun-bridge"))
	var natsURL, token string
	Eventually(t, 30*time.Second, "the bridge's NATS", func() error {
		if bridge.Exited() {
			t.Fatalf("bosun-bridge exited:\n%s", bridge.Output())
		}
		u, err := os.ReadFile(filepath.Join(data, "nats.url"))
		if err != nil || len(u) == 0 {
			return fmt.Errorf("no nats.url yet (%v)", err)
		}
		tok, err := os.ReadFile(filepath.Join(data, "nats.token"))
		if err != nil {
			return err
		}
		natsURL, token = strings.TrimSpace(string(u)), strings.TrimSpace(string(tok))
		return nil
	})
	StartProcess(t, tmp, "hello-worker", append(env, "BOSUN_DATA_DIR="+data), filepath.Join(tmp, "bin", "hello-worker"))
	nc, err := nats.Connect(natsURL, nats.Token(token))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := []byte(`{"jsonrpc":"2.0","id":1,"method":"hello.greet","params":{"name":"Ada"}}`)
	Eventually(t, 30*time.Second, "hello.greet answers over the bridge's NATS", func() error {
		msg, err := nc.Request("bosun.rpc.hello.greet", req, 2*time.Second)
		if err != nil {
			return err
		}
		if !strings.Contains(string(msg.Data), `"greeting":"hello, Ada"`) {
			t.Fatalf("hello.greet answered %s", msg.Data)
		}
		return nil
	})
	if !strings.Contains(bridge.Output(), "version="+version) {
		t.Errorf("the installed bridge does not report version %s:\n%s", version, tail(bridge.Output(), 4000))
	}
	if !strings.Contains(bridge.Output(), "worker announced") {
		t.Errorf("the bridge did not log the worker's announcement:\n%s", tail(bridge.Output(), 4000))
	}
}

// readmeWorker returns the complete main.go the README's "Writing a worker"
// section shows.
func readmeWorker(tb testing.TB, readme string) string {
	tb.Helper()
	_, section, ok := strings.Cut(readme, "## Writing a worker")
	if !ok {
		tb.Fatal("README.md has no section \"Writing a worker\"")
	}
	m := regexp.MustCompile("(?s)```go\n(package main\n.*?)```").FindStringSubmatch(section)
	if m == nil {
		tb.Fatal("README.md's \"Writing a worker\" has no ```go block starting with package main")
	}
	return m[1]
}

// writeCloudPublicKey writes a fresh Ed25519 public key in PEM for a
// bridge to pin and returns its path.
func writeCloudPublicKey(tb testing.TB, dir string) string {
	tb.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(dir, "cloud_public.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}
