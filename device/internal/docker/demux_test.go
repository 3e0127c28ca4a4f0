package docker

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
)

// frame builds one frame of Docker's multiplexed stream.
func frame(stream byte, payload string) []byte {
	h := []byte{stream, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[4:], uint32(len(payload)))
	return append(h, payload...)
}

func join(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func TestDemux(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    []string // "stream:line"
		wantErr string
	}{
		{name: "empty", in: nil, want: nil},
		{
			name: "one line each",
			in:   join(frame(1, "out 1\n"), frame(2, "err 1\n")),
			want: []string{"stdout:out 1", "stderr:err 1"},
		},
		{
			name: "several lines in a frame",
			in:   join(frame(1, "a\nb\nc\n")),
			want: []string{"stdout:a", "stdout:b", "stdout:c"},
		},
		{
			name: "line split across frames, interleaved with the other stream",
			in:   join(frame(1, "hel"), frame(2, "oops\n"), frame(1, "lo\n")),
			want: []string{"stderr:oops", "stdout:hello"},
		},
		{
			name: "last line without newline",
			in:   join(frame(1, "done")),
			want: []string{"stdout:done"},
		},
		{
			name: "CRLF and empty lines",
			in:   join(frame(2, "x\r\n\n")),
			want: []string{"stderr:x", "stderr:"},
		},
		{
			name: "stdin counts as stdout",
			in:   join(frame(0, "typed\n")),
			want: []string{"stdout:typed"},
		},
		{
			name: "empty frame",
			in:   join(frame(1, ""), frame(1, "x\n")),
			want: []string{"stdout:x"},
		},
		{
			name:    "raw text is not a multiplexed stream",
			in:      []byte("hello from a tty container\n"),
			wantErr: "not a multiplexed stream",
		},
		{
			name:    "truncated payload",
			in:      frame(1, "abcdef")[:10],
			want:    []string{},
			wantErr: "truncated frame",
		},
		{
			name:    "truncated header",
			in:      join(frame(1, "ok\n"), []byte{1, 0, 0}),
			want:    []string{"stdout:ok"},
			wantErr: "truncated frame header",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := Demux(bytes.NewReader(tt.in), func(stream, line string) { got = append(got, stream+":"+line) })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if tt.want == nil {
					return
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSplitLines(t *testing.T) {
	var got []string
	if err := SplitLines(strings.NewReader("a\r\nb\nc"), func(l string) { got = append(got, l) }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
