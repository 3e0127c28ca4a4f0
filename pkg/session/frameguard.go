package session

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
)

// GuardFrames wraps w so that a websocket accepted from it answers a frame
// whose header claims more than limit payload bytes with 1009 (message too
// big) at once.
//
// Why: coder/websocket enforces its read limit by counting payload bytes as
// they arrive, so a peer that claims 2^40 bytes and then sends nothing holds
// the connection until the ping times out. The guard reads the frame
// headers as they pass (client frames: 2–14 bytes each) and, on a claim over
// the limit, feeds the library limit+1 filler bytes instead of waiting for
// the peer's: the library's own limit check then fires and it sends the
// 1009 close frame. What the peer sent after the header is discarded.
func GuardFrames(w http.ResponseWriter, limit int64) http.ResponseWriter {
	return &guardWriter{ResponseWriter: w, limit: limit}
}

type guardWriter struct {
	http.ResponseWriter
	limit int64
}

// Unwrap lets http.ResponseController reach the original writer.
func (g *guardWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

func (g *guardWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := g.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("session: response writer cannot hijack")
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Bytes the HTTP server already buffered are frames too.
	buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
	gc := &guardConn{Conn: c, src: io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), c), limit: g.limit}
	// A write buffer of our own, half the size of net/http's, which is
	// dropped once the handler returns (nothing is buffered in it at a
	// hijack): it lives as long as the session, and an envelope is usually
	// well under 2 KiB; a larger frame is written through it.
	return gc, bufio.NewReadWriter(bufio.NewReader(gc), bufio.NewWriterSize(c, guardWriteBuf)), nil
}

// guardWriteBuf is the size of a guarded connection's write buffer.
const guardWriteBuf = 2048

// guardConn parses the client→server frame stream passing through Read.
type guardConn struct {
	net.Conn
	src   io.Reader
	limit int64

	mu      sync.Mutex // guards the following (Read is not concurrent, but be safe)
	hdr     [14]byte   // the header being read
	hdrLen  int        // bytes of hdr read so far
	skip    int64      // payload bytes of the current frame still to pass
	filler  int64      // > 0: bytes of filler still to hand out
	tripped bool       // a frame over the limit was seen
}

func (g *guardConn) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.tripped {
		if g.filler > 0 {
			n := int(min(int64(len(p)), g.filler))
			clear(p[:n])
			g.filler -= int64(n)
			return n, nil
		}
		return g.src.Read(p) // the library is closing; let it read what it will
	}
	n, err := g.src.Read(p)
	for i := 0; i < n; {
		if g.skip > 0 {
			k := min(int64(n-i), g.skip)
			g.skip -= k
			i += int(k)
			continue
		}
		g.hdr[g.hdrLen] = p[i]
		g.hdrLen++
		i++
		_, plen, done := headerState(g.hdr[:g.hdrLen])
		if !done {
			continue
		}
		g.hdrLen = 0
		if plen > g.limit {
			g.tripped = true
			g.filler = g.limit + 1
			// Hand the library the header, then filler from the next Read.
			return i, nil
		}
		g.skip = plen
	}
	return n, err
}

// headerState reports, for the bytes of a frame header read so far, how
// many bytes the whole header has (once known), its payload length and
// whether it is complete.
func headerState(h []byte) (need int, plen int64, done bool) {
	if len(h) < 2 {
		return 2, 0, false
	}
	need = 2
	l := int64(h[1] & 0x7f)
	switch l {
	case 126:
		need += 2
	case 127:
		need += 8
	}
	if h[1]&0x80 != 0 {
		need += 4
	}
	if len(h) < need {
		return need, 0, false
	}
	switch l {
	case 126:
		l = int64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		u := binary.BigEndian.Uint64(h[2:10])
		if u > 1<<62 {
			u = 1 << 62
		}
		l = int64(u)
	}
	return need, l, true
}
