package docker

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxFrame bounds one frame of a multiplexed stream (Docker writes at most
// 32 KiB per frame; anything far larger means we are not reading frames).
const maxFrame = 16 << 20

// Demux reads Docker's multiplexed log stream, in which every chunk comes
// behind an 8-byte header — stream type (1 stdout, 2 stderr; 0 stdin is
// reported as stdout), three zero bytes, and the big-endian uint32 payload
// size — and calls fn once per line with "stdout" or "stderr". A line split
// across frames is joined; a final line without a newline is reported too.
func Demux(r io.Reader, fn func(stream, line string)) error {
	var (
		hdr     [8]byte
		partial = map[byte]*strings.Builder{1: {}, 2: {}}
	)
	name := func(t byte) string {
		if t == 2 {
			return "stderr"
		}
		return "stdout"
	}
	flush := func() {
		for _, t := range []byte{1, 2} {
			if b := partial[t]; b.Len() > 0 {
				fn(name(t), strings.TrimSuffix(b.String(), "\r"))
				b.Reset()
			}
		}
	}
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				flush()
				return nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				flush()
				return fmt.Errorf("truncated frame header")
			}
			return err
		}
		t := hdr[0]
		if t > 2 || hdr[1] != 0 || hdr[2] != 0 || hdr[3] != 0 {
			return fmt.Errorf("not a multiplexed stream (header % x)", hdr)
		}
		if t == 0 {
			t = 1
		}
		n := binary.BigEndian.Uint32(hdr[4:])
		if n > maxFrame {
			return fmt.Errorf("frame of %d bytes", n)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			flush()
			return fmt.Errorf("truncated frame: %w", err)
		}
		b := partial[t]
		for len(payload) > 0 {
			i := strings.IndexByte(string(payload), '\n')
			if i < 0 {
				b.Write(payload)
				break
			}
			b.Write(payload[:i])
			fn(name(t), strings.TrimSuffix(b.String(), "\r"))
			b.Reset()
			payload = payload[i+1:]
		}
	}
}

// SplitLines calls fn for every line of a raw (TTY) stream.
func SplitLines(r io.Reader, fn func(line string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxFrame)
	for sc.Scan() {
		fn(strings.TrimSuffix(sc.Text(), "\r"))
	}
	return sc.Err()
}
