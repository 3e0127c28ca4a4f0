package ota

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
)

// hashingReader hashes what is read through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
}

func newHashingReader(r io.Reader) *hashingReader { return &hashingReader{r: r, h: sha256.New()} }

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

// drain reads the rest, so that sum covers the whole stream.
func (h *hashingReader) drain() error {
	_, err := io.Copy(io.Discard, h)
	return err
}

func (h *hashingReader) sum() string { return hex.EncodeToString(h.h.Sum(nil)) }
