package bridge_test

import (
	"strings"
	"testing"

	"github.com/bosunhq/bosun/device/internal/bridge"
)

// TestCloudURLFailover: with several cloud URLs the bridge dials them in
// turn: past one where nothing listens to the next, and after a session
// ends to the one after it, round the list.
func TestCloudURLFailover(t *testing.T) {
	a, b := newTestCloud(t), newTestCloud(t)
	dead := "ws://127.0.0.1:1/v1/device" // nothing listens on port 1
	br := startBridge(t, a, t.TempDir(), func(o *bridge.Options) { o.CloudURL = dead + ", " + a.URL() + "," + b.URL() })
	ccA := a.nextConn(t)
	a.nextReport(t)
	eventually(t, "accepted on A", func() bool { return br.Status() == bridge.StatusAccepted })
	ccA.drop() // A's replica dies: the bridge goes on to B
	ccB := b.nextConn(t)
	b.nextReport(t)
	eventually(t, "accepted on B", func() bool { return br.Status() == bridge.StatusAccepted })
	ccB.drop() // then the dead one, then A again
	a.nextConn(t)
	a.nextReport(t)
	if logs := br.logs.String(); !strings.Contains(logs, "dialling "+dead) {
		t.Errorf("the dead URL was never dialled:\n%s", logs)
	}
}

// TestSplitCloudURLs: a list of up to MaxCloudURLs ws:// or wss:// URLs;
// anything else is refused with the entry named.
func TestSplitCloudURLs(t *testing.T) {
	list := func(n int) string {
		urls := make([]string, n)
		for i := range urls {
			urls[i] = "ws://127.0.0.1:8080/v1/device"
		}
		return strings.Join(urls, ",")
	}
	for _, tc := range []struct {
		name, in string
		want     int
		err      string
	}{
		{"one", "wss://cloud.example/v1/device", 1, ""},
		{"spaces around", " ws://a:1/v1/device , wss://b/v1/device ", 2, ""},
		{"at the bound", list(bridge.MaxCloudURLs), bridge.MaxCloudURLs, ""},
		{"beyond the bound", list(bridge.MaxCloudURLs + 1), 0, "want at most 16"},
		{"empty", " ", 0, "cloud URL is required"},
		{"empty entry", "ws://a:1/v1/device,,ws://b:1/v1/device", 0, "an empty entry"},
		{"trailing comma", "ws://a:1/v1/device,", 0, "an empty entry"},
		{"http", "ws://a:1/v1/device,http://b:1/v1/device", 0, `"http://b:1/v1/device": want ws:// or wss://`},
		{"no host", "ws:///v1/device", 0, "want ws:// or wss://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bridge.SplitCloudURLs(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("SplitCloudURLs(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || len(got) != tc.want {
				t.Fatalf("SplitCloudURLs(%q) = %v, %v; want %d URLs", tc.in, got, err, tc.want)
			}
		})
	}
}
