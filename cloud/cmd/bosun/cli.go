package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api/client"
	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/tags"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the cloud or a device said no, or could not be reached
	exitUsage   = 2 // the command line is wrong
)

// run is the whole CLI: main only wires the process to it, tests call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now}
	return a.run(ctx, args)
}

// app holds what every command needs.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	httpClient     *http.Client // nil means a default client without overall timeout

	// Filled by the common flags.
	url, token, config string
	json               bool
	// fs is the flag set of the command that runs, for its help.
	fs *flag.FlagSet
}

// usageError is a wrong command line: exit code 2 and a hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// errReported means the device answered with a JSON-RPC error (already
// printed) or some devices of a fan-out failed: exit 1, nothing more to say.
var errReported = errors.New("reported")

// command is one `bosun COMMAND`. Its help (`bosun COMMAND -h`, `bosun help
// COMMAND`) is made of synopsis, summary, args and the flags its run
// function defines.
type command struct {
	name string
	// synopsis is what follows "bosun NAME" on a usage line: the positional
	// arguments and the main flags; one line per form.
	synopsis string
	summary  string
	// args documents each positional argument of synopsis.
	args []arg
	run  func(ctx context.Context, a *app, args []string) error
}

// arg is one positional argument in a command's help.
type arg struct{ name, help string }

var commands []command

func init() {
	// Assigned in init because the help command refers to the table.
	idArg := arg{"ID", "a device's id, as `bosun devices` lists it"}
	idsArg := arg{"ID...", "one or more device ids; each is done in turn, and each failure reported"}
	commands = []command{
		{name: "devices", synopsis: "[--pending] [--status S] [--tag T] [--online|--offline] [--q TEXT] [--limit N] [--offset N] [--json]",
			summary: "list devices", run: cmdDevices},
		{name: "device", synopsis: "ID [--json]", summary: "show one device and its keys", args: []arg{idArg}, run: cmdDevice},
		{name: "accept", synopsis: "ID... [--fingerprint SHA256:...] [--json]", summary: "accept devices' pending keys (--fingerprint: the key you reviewed)",
			args: []arg{idsArg}, run: cmdAccept},
		{name: "reject", synopsis: "ID... [--json]", summary: "reject devices' keys (their sessions close)", args: []arg{idsArg}, run: cmdTransition("reject")},
		{name: "decommission", synopsis: "ID... [--json]", summary: "revoke devices' keys and close their sessions", args: []arg{idsArg}, run: cmdTransition("decommission")},
		{name: "preauth", synopsis: "ID KEYFILE [--json]\n--file DEVICES.json [--json]", summary: "accept a device's public key (PEM or DER file) before it connects; --file: many at once",
			args: []arg{{"ID", "the id the device will register with"}, {"KEYFILE", "the device's public key: a PEM (PUBLIC KEY) or DER file"}}, run: cmdPreauth},
		{name: "tag", synopsis: "ID TAG[,TAG...] [--json]", summary: `set a device's tags ("" removes them all)`,
			args: []arg{idArg, {"TAG[,TAG...]", `the device's tags, comma-separated, replacing the ones it has; "" removes them all`}}, run: cmdTag},
		{name: "call", synopsis: "ID METHOD [JSON] [--timeout 30s] [--ttl 1h] [--json]\n--tag TAG METHOD [JSON] [--timeout 30s] [--json]",
			summary: "call a method on a device, or on every device with a tag",
			args: []arg{idArg, {"METHOD", "the method, e.g. system.info (rpc.list lists what a device serves)"},
				{"JSON", `the params: a JSON object or array, e.g. '{"all":true}'; none by default`}}, run: cmdCall},
		{name: "calls", synopsis: "[--device ID] [--status S] [--limit N] [--json]\nCALL_ID [--json]", summary: "list recent calls, or show one",
			args: []arg{{"CALL_ID", "show this call in full (params, result or error), as `bosun calls` lists it"}}, run: cmdCalls},
		{name: "audit", synopsis: "[--actor A] [--action A] [--target T] [--limit N] [--json]", summary: "show the audit log", run: cmdAudit},
		{name: "events", synopsis: "[--json]", summary: "follow live events until Ctrl-C", run: cmdEvents},
		{name: "tokens", synopsis: "[list | create NAME | revoke ID] [--json]", summary: "list, create or revoke API tokens",
			args: []arg{{"list", "list the tokens (the default)"}, {"create NAME", "create a token called NAME and print its secret, once"},
				{"revoke ID", "revoke the token with this number, as `bosun tokens` lists it"}}, run: cmdTokens},
		artifactsCommand,   // artifacts.go
		deploymentsCommand, // deployments.go
		versionsCommand,
		releaseCommand,
		{name: "help", synopsis: "[COMMAND]", summary: "show this help, or a command's", args: []arg{{"COMMAND", "show this command's help, as `bosun COMMAND -h` does"}}},
	}
}

func (a *app) usage(w io.Writer) {
	fmt.Fprintln(w, "usage: bosun [--url URL] [--token TOKEN] [--config FILE] COMMAND [ARGS]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The cloud URL and token come from --url/--token, BOSUN_URL/BOSUN_TOKEN, or a")
	fmt.Fprintln(w, `config file {"url":"...","token":"..."} (--config, BOSUN_CONFIG, default`)
	fmt.Fprintln(w, "$XDG_CONFIG_HOME/bosun/config.json or ~/.config/bosun/config.json).")
	fmt.Fprintln(w, "Run `bosun COMMAND -h` for a command's arguments and flags.")
}

// usageLines is the usage of cmd: one line per form of its synopsis.
func (c *command) usageLines() string {
	var b strings.Builder
	for i, form := range strings.Split(c.synopsis, "\n") {
		lead := "usage: "
		if i > 0 {
			lead = "       "
		}
		fmt.Fprintf(&b, "%sbosun %s %s\n", lead, c.name, form)
	}
	return b.String()
}

// help writes cmd's help: usage, summary, positional arguments, and the
// flags of fs (nil: none), the command's own before the common ones.
func (c *command) help(w io.Writer, fs *flag.FlagSet) {
	io.WriteString(w, c.usageLines())
	fmt.Fprintf(w, "\n%s%s.\n", strings.ToUpper(c.summary[:1]), c.summary[1:])
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(c.args) > 0 {
		fmt.Fprintln(tw, "\narguments:")
		for _, a := range c.args {
			fmt.Fprintf(tw, "  %s\t%s\n", a.name, a.help)
		}
	}
	if fs != nil {
		for _, section := range []struct {
			title  string
			common bool
		}{{"flags", false}, {"common flags", true}} {
			fmt.Fprintf(tw, "\n%s:\n", section.title)
			fs.VisitAll(func(f *flag.Flag) {
				if commonFlags[f.Name] != section.common {
					return
				}
				name, usage := placeholder(f), f.Usage
				if !section.common && f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
					usage += " (default " + f.DefValue + ")"
				}
				fmt.Fprintf(tw, "  --%s%s\t%s\n", f.Name, name, usage)
			})
		}
	}
	tw.Flush()
}

// placeholder names a flag's value in help: " N" for numbers, " NAME" for
// strings (--tag TAG), nothing for booleans.
func placeholder(f *flag.Flag) string {
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return ""
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if _, ok := g.Get().(int); ok {
			return " N"
		}
	}
	return " " + strings.ToUpper(f.Name)
}

// commonFlags are the flags every command takes (commonFlags, then --json
// in flags); help lists them last.
var commonFlags = map[string]bool{"url": true, "token": true, "config": true}

func (a *app) run(ctx context.Context, args []string) int {
	top := flag.NewFlagSet("bosun", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	a.commonFlags(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.usage(a.stdout)
			return exitOK
		}
		fmt.Fprintf(a.stderr, "bosun: %v\n", err)
		a.usage(a.stderr)
		return exitUsage
	}
	if top.NArg() == 0 {
		a.usage(a.stderr)
		return exitUsage
	}
	name, rest := top.Arg(0), top.Args()[1:]
	if name == "help" {
		switch {
		case len(rest) == 0:
			a.usage(a.stdout)
			return exitOK
		case len(rest) == 1 && lookup(rest[0]) != nil && rest[0] != "help":
			name, rest = rest[0], []string{"-h"}
		case len(rest) == 1 && rest[0] == "help":
			lookup("help").help(a.stdout, nil)
			return exitOK
		default:
			fmt.Fprintf(a.stderr, "bosun help: unknown command %q (run `bosun help`)\n", strings.Join(rest, " "))
			return exitUsage
		}
	}
	cmd := lookup(name)
	if cmd == nil {
		fmt.Fprintf(a.stderr, "bosun: unknown command %q (run `bosun help`)\n", name)
		return exitUsage
	}
	a.fs = nil
	err := cmd.run(ctx, a, rest)
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		cmd.help(a.stdout, a.fs)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "bosun %s: %s\n%s", cmd.name, ue.msg, cmd.usageLines())
		return exitUsage
	case errors.Is(err, errReported):
		return exitFailure
	default:
		fmt.Fprintf(a.stderr, "bosun %s: %s\n", cmd.name, describe(err))
		return exitFailure
	}
}

// lookup finds a command by name; nil if there is none.
func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func (a *app) commonFlags(fs *flag.FlagSet) {
	fs.StringVar(&a.url, "url", a.url, "cloud URL, e.g. http://localhost:8080 (env BOSUN_URL)")
	fs.StringVar(&a.token, "token", a.token, "API token bsn_... (env BOSUN_TOKEN)")
	fs.StringVar(&a.config, "config", a.config, "config file (env BOSUN_CONFIG)")
}

// flags makes a command's flag set with the common flags and --json. The
// flag package prints nothing: run reports a wrong flag with the usage,
// and -h with the command's help, made from this flag set.
func (a *app) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("bosun "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	a.commonFlags(fs)
	fs.BoolVar(&a.json, "json", false, "print JSON for scripts")
	a.fs = fs
	return fs
}

// parse parses args with flags anywhere among the positional arguments
// (`bosun call dev-1 system.info --timeout 5s`); "--" ends the flags.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{err.Error()}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// fileConfig is the config file.
type fileConfig struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// resolve finds the cloud URL and token: flags, then environment, then the
// config file.
func (a *app) resolve() (url, token string, err error) {
	var fc fileConfig
	path, explicit := a.config, true
	if path == "" {
		path = a.getenv("BOSUN_CONFIG")
	}
	if path == "" {
		explicit = false
		if x := a.getenv("XDG_CONFIG_HOME"); x != "" {
			path = filepath.Join(x, "bosun", "config.json")
		} else if h := a.getenv("HOME"); h != "" {
			path = filepath.Join(h, ".config", "bosun", "config.json")
		}
	}
	if path != "" {
		b, rerr := os.ReadFile(path)
		switch {
		case rerr == nil:
			dec := json.NewDecoder(strings.NewReader(string(b)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&fc); err != nil {
				return "", "", fmt.Errorf("config file %s: %v", path, err)
			}
		case explicit || !errors.Is(rerr, os.ErrNotExist):
			return "", "", fmt.Errorf("config file: %v", rerr)
		}
	}
	url = firstNonEmpty(a.url, a.getenv("BOSUN_URL"), fc.URL)
	token = firstNonEmpty(a.token, a.getenv("BOSUN_TOKEN"), fc.Token)
	if url == "" {
		return "", "", errors.New("no cloud URL: use --url, BOSUN_URL or a config file (see `bosun help`)")
	}
	if token == "" {
		return "", "", errors.New("no API token: use --token, BOSUN_TOKEN or a config file (see `bosun help`)")
	}
	return url, token, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func (a *app) client() (*client.Client, error) {
	u, t, err := a.resolve()
	if err != nil {
		return nil, err
	}
	return client.New(u, t, a.httpClient)
}

// describe makes an error short and clear for a person.
func describe(err error) string {
	var ce *client.Error
	if errors.As(err, &ce) {
		switch ce.Code {
		case wire.CodeUnauthenticated:
			return ce.Message + " (check --token, BOSUN_TOKEN or the config file)"
		default:
			return ce.Message
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if errors.Is(err, context.Canceled) {
			return "interrupted"
		}
		return fmt.Sprintf("cannot reach the cloud at %s: %v", redactURL(ue.URL), errors.Unwrap(ue.Err))
	}
	return err.Error()
}

// redactURL strips the path: the base URL is what the user can fix.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	return u.Scheme + "://" + u.Host
}

// printJSON prints v indented.
func (a *app) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", b)
	return err
}

// prettyJSON indents raw JSON for people; invalid JSON is returned as is.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "null"
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// rpcErrorText is how a JSON-RPC error reads: "error -32000: device offline".
func rpcErrorText(e *wire.RPCError) string {
	s := fmt.Sprintf("error %d: %s", e.Code, e.Message)
	if len(e.Data) > 0 && string(e.Data) != "null" {
		s += "\n" + prettyJSON(e.Data)
	}
	return s
}

// --- commands ---

func cmdDevices(ctx context.Context, a *app, args []string) error {
	fs := a.flags("devices")
	var f client.DeviceFilter
	pending := fs.Bool("pending", false, "only devices waiting for acceptance (--status pending)")
	online := fs.Bool("online", false, "only online devices")
	offline := fs.Bool("offline", false, "only offline devices")
	fs.StringVar(&f.Status, "status", "", "pending, accepted, rejected, preauthorized or decommissioned")
	fs.StringVar(&f.Tag, "tag", "", "only devices with this tag")
	fs.StringVar(&f.Text, "q", "", "text search (id, attributes)")
	fs.IntVar(&f.Limit, "limit", 0, "at most this many (default 50, max 500)")
	fs.IntVar(&f.Offset, "offset", 0, "skip this many")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *pending {
		if f.Status != "" && f.Status != "pending" {
			return usagef("--pending and --status %s contradict each other", f.Status)
		}
		f.Status = "pending"
	}
	if *online && *offline {
		return usagef("--online and --offline contradict each other")
	}
	if *online || *offline {
		f.Online = online
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	list, err := c.ListDevices(ctx, f)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(list)
	}
	a.deviceTable(list)
	return nil
}

func cmdDevice(ctx context.Context, a *app, args []string) error {
	fs := a.flags("device")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one device ID")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	d, err := c.Device(ctx, pos[0])
	if err != nil {
		return err
	}
	ks, err := c.Keys(ctx, pos[0])
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(struct {
			wire.Device
			Keys []wire.KeySet `json:"keys"`
		}{d, ks})
	}
	a.deviceDetail(d, ks)
	return nil
}

// cmdAccept accepts each ID's pending (or rejected) key: the one
// --fingerprint names (one ID only), or the device's only candidate. A device with several pending
// keys and no --fingerprint is a failure that lists them, each with the
// command that accepts it. Like cmdTransition: a line per success (the
// fingerprint the cloud accepted), every failure reported, exit 1 if any
// failed.
func cmdAccept(ctx context.Context, a *app, args []string) error {
	fs := a.flags("accept")
	fp := fs.String("fingerprint", "", "accept the pending or rejected key with this fingerprint (SHA256:..., as `bosun device ID` lists it); one ID only")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("want at least one device ID")
	}
	if *fp != "" && len(pos) != 1 {
		return usagef("--fingerprint names a key of one device: give exactly one ID")
	}
	if *fp != "" && !strings.HasPrefix(*fp, "SHA256:") {
		return usagef("--fingerprint %q: want SHA256:... as `bosun device %s` lists it", *fp, pos[0])
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	failed := false
	done := []wire.AcceptResponse{}
	for _, id := range pos {
		res, err := c.Accept(ctx, id, *fp)
		if err != nil {
			failed = true
			fmt.Fprintf(a.stderr, "bosun accept: %s: %s\n", id, describeAccept(id, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		done = append(done, res)
		if !a.json {
			fmt.Fprintf(a.stdout, "accepted %s (%s)\n", res.ID, orDash(res.AcceptedFingerprint))
		}
	}
	if a.json {
		if err := a.printJSON(done); err != nil {
			return err
		}
	}
	if failed {
		return errReported
	}
	return nil
}

// describeAccept is describe, and for a device with several pending keys
// the commands that accept each.
func describeAccept(id string, err error) string {
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != wire.CodeAmbiguousKey || len(ce.Fingerprints) == 0 {
		return describe(err)
	}
	var b strings.Builder
	b.WriteString(ce.Message)
	b.WriteString("\ncompare them with the device's own (bosun-bridge fingerprint on the device), then accept one:")
	for _, fp := range ce.Fingerprints {
		fmt.Fprintf(&b, "\n  bosun accept %s --fingerprint %s", id, fp)
	}
	return b.String()
}

// cmdTransition makes reject and decommission: each ID in turn, a line per
// success, every failure reported, exit 1 if any failed.
func cmdTransition(op string) func(context.Context, *app, []string) error {
	past := map[string]string{"reject": "rejected", "decommission": "decommissioned"}[op]
	return func(ctx context.Context, a *app, args []string) error {
		fs := a.flags(op)
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) == 0 {
			return usagef("want at least one device ID")
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		failed := false
		var done []wire.Device
		for _, id := range pos {
			var d wire.Device
			if op == "reject" {
				d, err = c.Reject(ctx, id)
			} else {
				d, err = c.Decommission(ctx, id)
			}
			if err != nil {
				failed = true
				fmt.Fprintf(a.stderr, "bosun %s: %s: %s\n", op, id, describe(err))
				if ctx.Err() != nil {
					break
				}
				continue
			}
			done = append(done, d)
			if !a.json {
				fmt.Fprintf(a.stdout, "%s %s (%s)\n", past, d.ID, orDash(d.Fingerprint))
			}
		}
		if a.json {
			if done == nil {
				done = []wire.Device{}
			}
			if err := a.printJSON(done); err != nil {
				return err
			}
		}
		if failed {
			return errReported
		}
		return nil
	}
}

func cmdPreauth(ctx context.Context, a *app, args []string) error {
	fs := a.flags("preauth")
	file := fs.String("file", "", `preauthorise every device of this JSON file: {"devices":[{"id":...,"public_key":...}]}`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *file != "" {
		if len(pos) != 0 {
			return usagef("--file takes no device ID or KEYFILE")
		}
		return preauthFile(ctx, a, *file)
	}
	if len(pos) != 2 {
		return usagef("want a device ID and a public key file")
	}
	b, err := os.ReadFile(pos[1])
	if err != nil {
		return err
	}
	key := strings.TrimSpace(string(b))
	if !strings.HasPrefix(key, "-----BEGIN") {
		key = encodeDER(b) // a binary DER file
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	d, err := c.Preauthorize(ctx, pos[0], key)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(d)
	}
	fmt.Fprintf(a.stdout, "preauthorized %s (%s)\n", d.ID, orDash(d.Fingerprint))
	return nil
}

// preauthFile preauthorises the devices listed in path, in batches of
// fleet's limit (1000); a batch the cloud refuses stops it, and what was
// preauthorised before stays (sending the file again is harmless).
func preauthFile(ctx context.Context, a *app, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var req wire.PreauthorizeBulkRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("%s: want {\"devices\":[{\"id\":...,\"public_key\":...}]}: %w", path, err)
	}
	if len(req.Devices) == 0 {
		return fmt.Errorf("%s: no devices", path)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	const batch = 1000
	var done []wire.PreauthorizedEntry
	for i := 0; i < len(req.Devices); i += batch {
		res, err := c.PreauthorizeMany(ctx, req.Devices[i:min(i+batch, len(req.Devices))])
		if err != nil {
			// describe, not %w: it would print only the API's message.
			return fmt.Errorf("devices %d to %d (%d preauthorised before): %s", i, min(i+batch, len(req.Devices))-1, len(done), describe(err))
		}
		done = append(done, res.Devices...)
	}
	if a.json {
		return a.printJSON(wire.PreauthorizeBulkResponse{Preauthorized: len(done), Devices: done})
	}
	fmt.Fprintf(a.stdout, "preauthorized %d devices\n", len(done))
	return nil
}

func cmdTag(ctx context.Context, a *app, args []string) error {
	fs := a.flags("tag")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef(`want a device ID and a comma-separated list of tags ("" removes them all)`)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	d, err := c.SetTags(ctx, pos[0], tags.Parse(pos[1])) // the dashboard's rule too
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(d)
	}
	fmt.Fprintf(a.stdout, "%s tags: %s\n", d.ID, orDash(strings.Join(d.Tags, ", ")))
	return nil
}

func cmdCall(ctx context.Context, a *app, args []string) error {
	fs := a.flags("call")
	tag := fs.String("tag", "", "call every device with this tag (results stream as they arrive)")
	timeout := fs.String("timeout", "", "how long to wait for each device, e.g. 10s (default 30s, max 5m)")
	ttl := fs.String("ttl", "", "queue the call this long for the device to be online and serve the method, e.g. 1h")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	for _, d := range []struct{ name, v string }{{"timeout", *timeout}, {"ttl", *ttl}} {
		if d.v == "" {
			continue
		}
		if v, err := time.ParseDuration(d.v); err != nil || v <= 0 {
			return usagef("--%s %q: want a positive duration like 30s or 1h", d.name, d.v)
		}
	}
	var params json.RawMessage
	if *tag != "" {
		if *ttl != "" {
			return usagef("--ttl works only for one device")
		}
		if len(pos) < 1 || len(pos) > 2 {
			return usagef("want METHOD [JSON] with --tag")
		}
		if params, err = paramsArg(pos[1:]); err != nil {
			return err
		}
		return a.fanOut(ctx, wire.FanOutRequest{Tag: *tag, Method: pos[0], Params: params, Timeout: *timeout})
	}
	if len(pos) < 2 || len(pos) > 3 {
		return usagef("want ID METHOD [JSON], or --tag TAG METHOD [JSON]")
	}
	if params, err = paramsArg(pos[2:]); err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	call, queued, err := c.Call(ctx, pos[0], wire.CallRequest{Method: pos[1], Params: params, Timeout: *timeout, TTL: *ttl})
	if err != nil {
		return err
	}
	if a.json {
		if err := a.printJSON(call); err != nil {
			return err
		}
	}
	switch {
	case queued && call.Status == "queued":
		if !a.json {
			exp := ""
			if call.ExpiresAt != nil {
				exp = ", expires " + a.when(*call.ExpiresAt)
			}
			// Queued with a last error: the device is online but does
			// not serve the method yet (docs/api.md, "Calling one device").
			why := "device offline"
			if call.Error != nil {
				why = fmt.Sprintf("device does not serve %s yet (%d %s)", call.Method, call.Error.Code, call.Error.Message)
			}
			fmt.Fprintf(a.stdout, "%s: call %s queued%s\n", why, call.ID, exp)
		}
	case queued:
		if !a.json {
			fmt.Fprintf(a.stdout, "call %s not finished yet (%s); see `bosun calls %s`\n", call.ID, call.Status, call.ID)
		}
	case call.Error != nil:
		fmt.Fprintln(a.stderr, rpcErrorText(call.Error))
		return errReported
	case !a.json:
		fmt.Fprintln(a.stdout, prettyJSON(call.Result))
	}
	return nil
}

// paramsArg checks the optional JSON params argument.
func paramsArg(rest []string) (json.RawMessage, error) {
	if len(rest) == 0 {
		return nil, nil
	}
	s := strings.TrimSpace(rest[0])
	if !json.Valid([]byte(s)) || (!strings.HasPrefix(s, "{") && !strings.HasPrefix(s, "[")) {
		return nil, usagef("params %q: want a JSON object or array, e.g. '{\"all\":true}'", rest[0])
	}
	return json.RawMessage(s), nil
}

func (a *app) fanOut(ctx context.Context, req wire.FanOutRequest) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	sum, err := c.FanOut(ctx, req, func(line wire.FanOutLine) {
		if a.json {
			b, _ := json.Marshal(line)
			fmt.Fprintf(a.stdout, "%s\n", b)
			return
		}
		if line.Type == wire.LineResult && line.Call != nil {
			a.printFanOutResult(*line.Call)
		}
	})
	if err != nil {
		return err
	}
	if sum.Total == 0 && req.Tag != "" {
		return fmt.Errorf("no device has tag %q (`bosun devices --tag %s` lists them)", req.Tag, req.Tag)
	}
	if !a.json {
		noun := "devices"
		if sum.Total == 1 {
			noun = "device"
		}
		fmt.Fprintf(a.stdout, "%d %s: %d succeeded, %d failed, %d offline, %d timed out\n",
			sum.Total, noun, sum.Succeeded, sum.Failed, sum.Offline, sum.TimedOut)
	}
	if sum.Succeeded < sum.Total {
		return errReported
	}
	return nil
}

func (a *app) printFanOutResult(c wire.Call) {
	if c.Error != nil {
		fmt.Fprintf(a.stdout, "%s: %s\n", c.DeviceID, rpcErrorText(c.Error))
		return
	}
	fmt.Fprintf(a.stdout, "%s: (%s)\n%s\n", c.DeviceID, duration(c.DurationMS), prettyJSON(c.Result))
}

func cmdCalls(ctx context.Context, a *app, args []string) error {
	fs := a.flags("calls")
	var f client.CallFilter
	fs.StringVar(&f.DeviceID, "device", "", "only calls to this device")
	fs.StringVar(&f.Status, "status", "", "queued, sent, delivered, succeeded, failed, timeout or expired")
	fs.IntVar(&f.Limit, "limit", 0, "at most this many (default 50, max 500)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("unexpected argument %q", pos[1])
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	if len(pos) == 1 { // bosun calls CALL_ID: one call in full
		call, err := c.GetCall(ctx, pos[0])
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(call)
		}
		a.callDetail(call)
		return nil
	}
	calls, err := c.ListCalls(ctx, f)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(calls)
	}
	a.callTable(calls)
	return nil
}

func cmdAudit(ctx context.Context, a *app, args []string) error {
	fs := a.flags("audit")
	var f client.AuditFilter
	fs.StringVar(&f.Actor, "actor", "", "only entries by this actor")
	fs.StringVar(&f.Action, "action", "", "only this action, e.g. device.accept")
	fs.StringVar(&f.Target, "target", "", "only this target, e.g. a device ID")
	fs.IntVar(&f.Limit, "limit", 0, "at most this many (default 50, max 500)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	entries, err := c.Audit(ctx, f)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(entries)
	}
	a.auditTable(entries)
	return nil
}

func cmdEvents(ctx context.Context, a *app, args []string) error {
	fs := a.flags("events")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	const maxBackoff = 30 * time.Second
	backoff := time.Second
	for {
		connected := false
		err := c.Events(ctx, func() {
			connected = true
			fmt.Fprintln(a.stderr, "following events (Ctrl-C to stop)")
		}, func(ev wire.Event) {
			if a.json {
				b, _ := json.Marshal(ev)
				fmt.Fprintf(a.stdout, "%s\n", b)
				return
			}
			a.printEvent(ev)
		})
		if ctx.Err() != nil {
			return nil
		}
		var ce *client.Error
		if errors.As(err, &ce) && ce.Status < 500 {
			return err // the token or the request is wrong: retrying will not help
		}
		if connected {
			backoff = time.Second
		}
		reason := "stream ended"
		if err != nil && !errors.Is(err, io.EOF) {
			reason = describe(err)
		}
		fmt.Fprintf(a.stderr, "events: %s; reconnecting in %s\n", reason, backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func cmdTokens(ctx context.Context, a *app, args []string) error {
	fs := a.flags("tokens")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	var op string
	switch {
	case len(pos) == 0, len(pos) == 1 && pos[0] == "list":
		op = "list"
	case len(pos) == 2 && (pos[0] == "create" || pos[0] == "revoke"):
		op = pos[0]
	default:
		return usagef("want list (or nothing), create NAME, or revoke ID")
	}
	var id int64
	if op == "revoke" {
		if id, err = strconv.ParseInt(pos[1], 10, 64); err != nil {
			return usagef("token ID %q: want a number", pos[1])
		}
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	switch op {
	case "create":
		res, err := c.CreateToken(ctx, pos[1])
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(res)
		}
		fmt.Fprintf(a.stdout, "token %d %q created; its secret is shown only now:\n%s\n", res.Token.ID, res.Token.Name, res.Secret)
		return nil
	case "revoke":
		if err := c.RevokeToken(ctx, id); err != nil {
			return err
		}
		if !a.json {
			fmt.Fprintf(a.stdout, "revoked token %d\n", id)
		}
		return nil
	}
	toks, err := c.Tokens(ctx)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(toks)
	}
	a.tokenTable(toks)
	return nil
}
