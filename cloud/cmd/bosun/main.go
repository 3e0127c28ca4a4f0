// Command bosun is the operator CLI of a Bosun cloud: it lists and accepts
// devices, calls methods on them (one, or many by tag), and follows the
// audit log and live events, all over the HTTP API (/api/v1); `bosun
// release` signs update metadata on local files only (pkg/release).
//
// The cloud URL and API token come from --url/--token, then BOSUN_URL and
// BOSUN_TOKEN, then a JSON config file {"url":"...","token":"..."} named
// by --config or BOSUN_CONFIG, by default $XDG_CONFIG_HOME/bosun/config.json
// or ~/.config/bosun/config.json. Run `bosun help` for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
