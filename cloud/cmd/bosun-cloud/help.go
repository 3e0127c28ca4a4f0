package main

import (
	"flag"
	"fmt"
	"regexp"
	"strings"
	"text/tabwriter"
)

// Help: `bosun-cloud --help` lists every command with its flags,
// `bosun-cloud COMMAND --help` (or `bosun-cloud help COMMAND`) one command.
// The flags come from the flag set parse builds, so a flag added there is
// listed without more work; a flag with an environment fallback names it
// at the end of its usage text, "... (BOSUN_NAME)", and help shows it in a
// column of its own.

// helpError is parse's answer to -h/--help: the help text, for stdout and
// exit status 0. It matches flag.ErrHelp.
type helpError struct{ text string }

func (e *helpError) Error() string { return e.text }
func (e *helpError) Unwrap() error { return flag.ErrHelp }

// commandNames are the commands in the order help lists them.
var commandNames = []string{"serve", "migrate", "user add", "token create", "keys ensure"}

// summaries say what each command does.
var summaries = map[string]string{
	"serve":        "Serve devices (/v1/device), the JSON API (/api/v1) and the dashboard.",
	"migrate":      "Apply the database migrations not applied yet.",
	"user add":     "Create a user with a generated password, printed once.",
	"token create": "Create an API token for a user, printed once.",
	"keys ensure":  "Create the cloud's key in --dir when missing (never replacing it) and write its public copies.",
}

// envSuffix is how a flag's usage names its environment variable.
var envSuffix = regexp.MustCompile(`\s*\((?:env )?(BOSUN_[A-Z0-9_]+)\)$`)

// wantsHelp reports whether args ask for help before any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--h", "--help":
			return true
		}
	}
	return false
}

// flagError turns an error of fs.Parse into parse's error: help, or the
// wrong flag with the command's usage.
func flagError(cmd string, fs *flag.FlagSet, err error) error {
	if err == flag.ErrHelp {
		return &helpError{commandHelp(cmd, fs)}
	}
	return fmt.Errorf("%s: %v\n%s(run bosun-cloud %s --help for the flags)", cmd, err, usageOf(cmd), cmd)
}

// usageOf is the lines of the usage text about cmd, as "usage: ..." with
// its continuation lines aligned.
func usageOf(cmd string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(usage, "\n") {
		switch {
		case strings.HasPrefix(line, "  bosun-cloud "):
			in = strings.HasPrefix(line, "  bosun-cloud "+cmd+" ") || line == "  bosun-cloud "+cmd
			if in {
				b.WriteString("usage: " + line[2:] + "\n")
			}
		case in && strings.HasPrefix(line, "    "):
			b.WriteString("     " + line + "\n")
		default:
			in = false
		}
	}
	return b.String()
}

// commandHelp is the help of one command: usage, what it does, its flags.
func commandHelp(cmd string, fs *flag.FlagSet) string {
	var b strings.Builder
	b.WriteString(usageOf(cmd))
	if s := summaries[cmd]; s != "" {
		b.WriteString("\n" + s + "\n")
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return b.String()
	}
	b.WriteString("\nflags (an environment variable sets its flag; the flag, when given, wins):\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		name, text := valueName(f)
		env := "-"
		if m := envSuffix.FindStringSubmatch(text); m != nil {
			env, text = m[1], text[:len(text)-len(m[0])]
		}
		switch f.DefValue {
		case "", "0", "0s", "false":
		default:
			text += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(tw, "  --%s%s\t%s\t%s\n", f.Name, name, env, text)
	})
	tw.Flush()
	return b.String()
}

// valueName names a flag's value for help: the back-quoted word of its
// usage if any (as flag.UnquoteUsage), N for numbers, DURATION for
// durations, nothing for booleans, else the last word of its name
// (--database-url URL, --listen ADDR).
func valueName(f *flag.Flag) (name, usage string) {
	if strings.Contains(f.Usage, "`") {
		n, u := flag.UnquoteUsage(f)
		return " " + n, u
	}
	kind, _ := flag.UnquoteUsage(f)
	switch kind {
	case "":
		return "", f.Usage
	case "int", "uint", "int64", "uint64":
		return " N", f.Usage
	case "duration":
		return " DURATION", f.Usage
	}
	if n, ok := valueNames[f.Name]; ok {
		return " " + n, f.Usage
	}
	words := strings.Split(f.Name, "-")
	return " " + strings.ToUpper(words[len(words)-1]), f.Usage
}

// valueNames name the values the rule of valueName names badly.
var valueNames = map[string]string{"data-dir": "DIR", "listen": "ADDR", "cloud-key": "PATH", "replica": "NAME", "user": "EMAIL"}

// allHelp is `bosun-cloud --help`: the usage, then each command's help.
func allHelp() string {
	var b strings.Builder
	b.WriteString(usage + "\n\nEvery flag listed with an environment variable may be set by it instead.\n")
	for _, cmd := range commandNames {
		_, err := parse(append(strings.Fields(cmd), "--help"), func(string) string { return "" })
		he, ok := err.(*helpError)
		if !ok {
			continue
		}
		b.WriteString("\n" + strings.Repeat("-", 72) + "\n" + he.text)
	}
	return b.String()
}
