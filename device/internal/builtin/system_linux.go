package builtin

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// fillSystem reads kernel, uptime, load and memory from /proc and uname,
// and disk figures from statfs(diskPath). What cannot be read stays zero.
func fillSystem(r *rpcproto.SystemInfoResult, diskPath string) {
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		r.Kernel = utsString(u.Sysname[:]) + " " + utsString(u.Release[:]) + " " + utsString(u.Version[:])
	}
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			r.UptimeSeconds, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		for i := 0; i < 3 && i < len(f); i++ {
			r.Load[i], _ = strconv.ParseFloat(f[i], 64)
		}
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			fs := strings.Fields(v)
			if len(fs) == 0 {
				continue
			}
			kb, _ := strconv.ParseUint(fs[0], 10, 64)
			switch k {
			case "MemTotal":
				r.MemTotalBytes = kb * 1024
			case "MemAvailable":
				r.MemAvailBytes = kb * 1024
			}
		}
		f.Close()
	}
	var st syscall.Statfs_t
	if syscall.Statfs(diskPath, &st) == nil {
		r.DiskTotal = st.Blocks * uint64(st.Bsize)
		r.DiskFree = st.Bavail * uint64(st.Bsize)
	}
}

func utsString[T int8 | uint8](a []T) string {
	b := make([]byte, 0, len(a))
	for _, c := range a {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}
