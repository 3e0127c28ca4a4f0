//go:build !linux

package builtin

import "github.com/bosunhq/bosun/pkg/rpcproto"

// fillSystem is only implemented on Linux, the platform Bosun devices run.
func fillSystem(r *rpcproto.SystemInfoResult, diskPath string) {}
