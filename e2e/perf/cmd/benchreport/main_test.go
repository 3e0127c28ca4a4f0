package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadRows(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string // ids, in order
		wantErr string
	}{
		{name: "ordered figures then baselines, short rows left out, last row of an id counts",
			in: `{"id":"B-ws","result":1}
{"id":"P7","result":1}

{"id":"P10","result":1}
{"id":"P2","result":1,"short":true}
{"id":"P1","result":1}
{"id":"P7","result":2}
`, want: []string{"P1", "P7", "P10", "B-ws"}},
		{name: "empty", in: "", want: nil},
		{name: "not JSON", in: "{\"id\":\"P1\"}\nnot json\n", wantErr: "line 2"},
		{name: "unknown field", in: `{"id":"P1","speed":3}`, wantErr: "unknown field"},
		{name: "no id", in: `{"result":3}`, wantErr: "without an id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := ReadRows(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range rows {
				ids = append(ids, r.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("ids %v, want %v", ids, tt.want)
			}
			if len(rows) > 1 && rows[1].ID == "P7" && rows[1].Result != 2 {
				t.Fatalf("P7 result %v, want the last row's 2", rows[1].Result)
			}
		})
	}
}

func TestRenderKeepsTheOlderPart(t *testing.T) {
	rows, err := ReadRows(strings.NewReader(`{"id":"P7","what":"OTA","result":2616,"unit":"MiB/s","baseline":"http.FileServer","base":2981,"ratio":0.878,"goal":"≥ 0.8 × http.FileServer","met":true,"command":"./scripts/bench.sh P7"}
{"id":"B-http","what":"plain | file server","result":1963.4,"unit":"MiB/s"}`))
	if err != nil {
		t.Fatal(err)
	}
	old := "# Benchmarks\n\n## Envelope (pkg/envelope)\n\nhand-written\n"
	doc := Render(rows, ParseMeta("cpu: AMD EPYC\ncommand: ./scripts/bench.sh\ngo test: go test -bench A\ngo test: go test -bench B\n"), "BenchmarkX 1 ns/op\n", Kept(old))
	for _, want := range []string{
		"| P7 | OTA | 2,616 MiB/s | 2,981 MiB/s | 0.878 | ≥ 0.8 × http.FileServer | **met** |",
		`| B-http | plain \| file server | 1,963 MiB/s | — | — | — (a baseline) | — |`,
		"| cpu | AMD EPYC |", "Command:\n\n```\n./scripts/bench.sh\n```", "Go test:\n\n```\ngo test -bench A\ngo test -bench B\n```", "BenchmarkX 1 ns/op",
		Marker + "\n\n## Envelope (pkg/envelope)\n\nhand-written\n",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the document lacks %q:\n%s", want, doc)
		}
	}
	// Generating again from its own output keeps the same older part once.
	again := Render(rows, nil, "", Kept(doc))
	if n := strings.Count(again, "hand-written"); n != 1 || strings.Count(again, Marker) != 1 {
		t.Fatalf("regenerated: %d copies of the kept part, %d markers", n, strings.Count(again, Marker))
	}
}

func TestRunRefusesBadRows(t *testing.T) {
	dir := t.TempDir()
	rows := filepath.Join(dir, "rows.jsonl")
	out := filepath.Join(dir, "out.md")
	os.WriteFile(rows, []byte("{broken\n"), 0o644)
	if err := run(rows, "", "", "", "", out); err == nil {
		t.Fatal("broken rows: no error")
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("broken rows wrote %s (stat: %v)", out, err)
	}
	if err := run("", "", "", "", "", out); err == nil {
		t.Fatal("no -rows: no error")
	}
}

func TestFailuresAndLoad(t *testing.T) {
	out := `BenchmarkA-2 1 5 ns/op
--- FAIL: BenchmarkFleet
    fleet_bench_test.go:18: P3 recorded
    fleet_bench_test.go:18: 1383 of 19800 simulated devices accepted after 3m0s
BenchmarkP7-2 1 5 ns/op
--- FAIL: BenchmarkP8-2
FAIL
`
	fs := Failures(out)
	if len(fs) != 2 || fs[0].Name != "BenchmarkFleet" || len(fs[0].Log) != 2 || fs[1].Name != "BenchmarkP8-2" || len(fs[1].Log) != 0 {
		t.Fatalf("failures %+v", fs)
	}
	doc := Render(nil, ParseMeta("cores: 2 (GOMAXPROCS 2)\nload average at the start: 20.09 14.10 8.30\n"), "", "", fs...)
	for _, want := range []string{"- `BenchmarkFleet`\n  - fleet_bench_test.go:18: P3 recorded\n  - fleet_bench_test.go:18: 1383 of 19800", "the load average was 20.1 on 2 cores"} {
		if !strings.Contains(doc, want) {
			t.Errorf("the document lacks %q:\n%s", want, doc)
		}
	}
	// At the cores' count the machine is not called loaded.
	if doc := Render(nil, ParseMeta("cores: 2\nload average at the start: 2.00 1 1\n"), "", ""); strings.Contains(doc, "loaded machine") {
		t.Errorf("load 2.00 on 2 cores called loaded:\n%s", doc)
	}
}
