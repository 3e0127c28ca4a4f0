package main

import (
	"bytes"
	"errors"
	"flag"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func helpText(t *testing.T, args []string, env map[string]string) string {
	t.Helper()
	_, err := parse(args, func(k string) string { return env[k] })
	var he *helpError
	if !errors.As(err, &he) || !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parse(%q) = %v, want help", args, err)
	}
	return he.text
}

// flagLine is one flag of a help text: name, value name, environment
// variable ("-": none).
var flagLine = regexp.MustCompile(`(?m)^  --([a-z0-9-]+)( [A-Z]+)?  +(BOSUN_[A-Z0-9_]+|-)  +\S`)

// TestHelp: --help, -h and help list every command with its flags, and each
// command's own help its flags with their environment variables.
func TestHelp(t *testing.T) {
	all := helpText(t, []string{"--help"}, nil)
	for _, args := range [][]string{{"-h"}, {"help"}} {
		if got := helpText(t, args, nil); got != all {
			t.Errorf("bosun-cloud %s differs from --help", args[0])
		}
	}
	for _, cmd := range commandNames {
		one := helpText(t, append(strings.Fields(cmd), "--help"), nil)
		if !strings.HasPrefix(one, "usage: bosun-cloud "+cmd+" ") || !strings.Contains(one, summaries[cmd]) {
			t.Errorf("%s --help:\n%s", cmd, one)
		}
		if !strings.Contains(all, one) {
			t.Errorf("--help lacks the help of %s:\n%s", cmd, one)
		}
		if got := helpText(t, append([]string{"help"}, strings.Fields(cmd)...), nil); got != one {
			t.Errorf("help %s differs from %s --help", cmd, cmd)
		}
	}
	serve := helpText(t, []string{"serve", "--help"}, nil)
	for _, want := range [][2]string{
		{"database-url URL", "BOSUN_DATABASE_URL"}, {"listen ADDR", "BOSUN_LISTEN"}, {"nats-url URL", "BOSUN_NATS_URL"},
		{"cloud-key PATH", "BOSUN_CLOUD_KEY"}, {"cloud-id ID", "BOSUN_CLOUD_ID"},
		{"replica NAME", "BOSUN_REPLICA"}, {"pending-ttl DURATION", "BOSUN_PENDING_TTL"}, {"max-pending N", "BOSUN_MAX_PENDING"},
		{"max-pending-per-addr N", "BOSUN_MAX_PENDING_PER_ADDR"}, {"max-pending-devices N", "BOSUN_MAX_PENDING_DEVICES"},
		{"max-new-pending-per-addr N", "BOSUN_MAX_NEW_PENDING_PER_ADDR"}, {"max-pending-keys N", "BOSUN_MAX_PENDING_KEYS"},
		{"data-dir DIR", "BOSUN_DATA_DIR"}, {"max-artifact-size N", "BOSUN_MAX_ARTIFACT_SIZE"},
	} {
		if !regexp.MustCompile(`(?m)^  --` + regexp.QuoteMeta(want[0]) + ` +` + want[1] + ` +\S`).MatchString(serve) {
			t.Errorf("serve --help lacks --%s with %s:\n%s", want[0], want[1], serve)
		}
	}
	// Defaults are the built-in ones, whatever the environment says.
	withEnv := helpText(t, []string{"serve", "--help"}, map[string]string{"BOSUN_LISTEN": "10.0.0.1:1", "BOSUN_PENDING_TTL": "soon"})
	if !strings.Contains(withEnv, "HTTP address (default 127.0.0.1:8080)") {
		t.Errorf("serve --help with BOSUN_LISTEN set:\n%s", withEnv)
	}
}

// TestEveryServeFlagHasItsEnvironmentVariable: every flag of serve and
// migrate names an environment variable in --help, and setting that
// variable does exactly what the flag does.
func TestEveryServeFlagHasItsEnvironmentVariable(t *testing.T) {
	base := map[string]string{"BOSUN_DATABASE_URL": "postgres://db"}
	for _, cmd := range []string{"serve", "migrate"} {
		lines := flagLine.FindAllStringSubmatch(helpText(t, []string{cmd, "--help"}, nil), -1)
		if len(lines) == 0 {
			t.Fatalf("%s --help lists no flags", cmd)
		}
		baseline, err := parse([]string{cmd}, func(k string) string { return base[k] })
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			name, value, env := l[1], strings.TrimSpace(l[2]), l[3]
			if env == "-" {
				t.Errorf("%s --%s has no environment variable", cmd, name)
				continue
			}
			v := map[string]string{"N": "7", "DURATION": "7m", "": "true"}[value]
			if v == "" {
				v = "postgres://other"
			}
			envs := map[string]string{env: v}
			for k, x := range base {
				if k != env {
					envs[k] = x
				}
			}
			byEnv, errEnv := parse([]string{cmd}, func(k string) string { return envs[k] })
			byFlag, errFlag := parse([]string{cmd, "--" + name + "=" + v}, func(k string) string { return base[k] })
			if (errEnv == nil) != (errFlag == nil) || !reflect.DeepEqual(byEnv, byFlag) {
				t.Errorf("%s=%s gives %+v (%v); --%s=%s gives %+v (%v)", env, v, byEnv, errEnv, name, v, byFlag, errFlag)
			}
			if errEnv == nil && reflect.DeepEqual(byEnv, baseline) {
				t.Errorf("%s=%s changed nothing", env, v)
			}
		}
	}
}

// TestWrongFlagIsNoHelp: a wrong flag is an error with the command's usage,
// not help.
func TestWrongFlagIsNoHelp(t *testing.T) {
	_, err := parse([]string{"serve", "--bogus"}, func(string) string { return "" })
	if err == nil || errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want a usage error", err)
	}
	for _, want := range []string{"serve: flag provided but not defined: -bogus\n", "usage: bosun-cloud serve [--database-url URL]", "bosun-cloud serve --help"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestHelpBinary runs the real binary: help goes to stdout with exit 0, a
// wrong flag to stderr with exit 2.
func TestHelpBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bosun-cloud")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(args ...string) (code int, stdout, stderr string) {
		var o, e bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &o, &e
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, o.String(), e.String()
	}
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"help", "serve"}, {"keys", "ensure", "-h"}} {
		code, out, errOut := run(args...)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage:") || !strings.Contains(out, "flags (") {
			t.Errorf("bosun-cloud %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
		}
	}
	if code, out, errOut := run("serve", "--bogus"); code != 2 || out != "" || !strings.Contains(errOut, "flag provided but not defined: -bogus") {
		t.Errorf("serve --bogus: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if code, out, _ := run(); code != 2 || out != "" {
		t.Errorf("no command: exit %d, stdout %q", code, out)
	}
}
