package main

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/pkg/keys"
)

// printFingerprint writes what an operator compares before accepting the
// device: its id, its key's algorithm and fingerprint, read from the data
// dir. It never makes a key: a device that has none has never registered.
func printFingerprint(cfg Config, w io.Writer) error {
	var pub crypto.PublicKey
	pubPath := filepath.Join(cfg.DataDir, datadir.PublicKeyFile)
	p, err := keys.LoadPublic(pubPath)
	switch {
	case err == nil:
		pub = p
	case errors.Is(err, fs.ErrNotExist):
		k, kerr := keys.LoadPrivate(filepath.Join(cfg.DataDir, datadir.KeyFile))
		if errors.Is(kerr, fs.ErrNotExist) {
			return fmt.Errorf("no device key in %s yet: start bosun-bridge once to make it", cfg.DataDir)
		}
		if kerr != nil {
			return fmt.Errorf("reading the device key: %w", kerr)
		}
		pub = k.Public()
	default:
		return fmt.Errorf("reading %s: %w", pubPath, err)
	}
	alg, err := keys.Alg(pub)
	if err != nil {
		return err
	}
	fp, err := keys.Fingerprint(pub)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "device_id   %s\nalg         %s\nfingerprint %s\n", cfg.DeviceID, alg, fp)
	return err
}
