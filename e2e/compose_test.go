package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestComposeMatchesCode keeps compose.dev.yml honest where no Docker engine
// runs: every build context and Dockerfile it names exists, every file a
// Dockerfile copies exists, and every BOSUN_* variable it sets is read by the
// code (so a renamed variable cannot silently stop working).
func TestComposeMatchesCode(t *testing.T) {
	root := Root(t)
	data, err := os.ReadFile(filepath.Join(root, "compose.dev.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image string `yaml:"image"`
			Build *struct {
				Context    string `yaml:"context"`
				Dockerfile string `yaml:"dockerfile"`
			} `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatalf("compose.dev.yml: %v", err)
	}
	for _, want := range []string{"postgres", "cloud", "device"} {
		if _, ok := compose.Services[want]; !ok {
			t.Errorf("compose.dev.yml has no %s service", want)
		}
	}

	code := goSources(t, root)
	copyLine := regexp.MustCompile(`(?m)^COPY (?:--[a-z]+=\S+ )*(.+)$`)
	for name, svc := range compose.Services {
		if svc.Build == nil {
			if svc.Image == "" {
				t.Errorf("service %s has neither build nor image", name)
			}
			continue
		}
		ctxDir := filepath.Join(root, svc.Build.Context)
		if st, err := os.Stat(ctxDir); err != nil || !st.IsDir() {
			t.Errorf("service %s: build context %s missing", name, svc.Build.Context)
			continue
		}
		dockerfile := filepath.Join(ctxDir, svc.Build.Dockerfile)
		df, err := os.ReadFile(dockerfile)
		if err != nil {
			t.Errorf("service %s: %v", name, err)
			continue
		}
		for _, m := range copyLine.FindAllStringSubmatch(string(df), -1) {
			if strings.Contains(m[0], "--from=") {
				continue
			}
			fields := strings.Fields(m[1])
			for _, src := range fields[:len(fields)-1] {
				if _, err := os.Stat(filepath.Join(ctxDir, src)); err != nil {
					t.Errorf("service %s: %s copies %s, which does not exist", name, svc.Build.Dockerfile, src)
				}
			}
		}
		for env := range svc.Environment {
			if !strings.HasPrefix(env, "BOSUN_") {
				continue
			}
			if !strings.Contains(code, `"`+env+`"`) {
				t.Errorf("service %s sets %s, which no Go code reads", name, env)
			}
		}
	}
}

// goSources returns the non-test Go source of the cloud and device modules.
func goSources(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	for _, mod := range []string{"cloud", "device"} {
		err := filepath.WalkDir(filepath.Join(root, mod), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			data, err := os.ReadFile(path)
			b.Write(data)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
