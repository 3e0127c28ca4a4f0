package bridge

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// The cloud keys a bridge trusts: the pinned ones (Options.CloudKey and
// CloudKeys) until the cloud announces its keys in an accepted session
// (auth.cloud_keys), then the announced set, kept in
// DataDir/cloud_keys.pem. That is how a device follows a rotation of the
// cloud key without being re-installed: during the window the cloud
// announces the old and the new key; once it signs with the new one it
// announces the new key alone, and the old one is trusted no more.

// loadTrust returns the announced set when there is one, else the pins. A
// file that is there but unreadable stops the bridge: falling back to older
// pins could trust a key the cloud has retired.
func loadTrust(o Options) ([]crypto.PublicKey, error) {
	path := filepath.Join(o.DataDir, datadir.CloudKeysFile)
	set, err := keys.LoadPublics(path)
	switch {
	case err == nil:
		return set, nil
	case errors.Is(err, os.ErrNotExist):
		return append([]crypto.PublicKey{o.CloudKey}, o.CloudKeys...), nil
	default:
		return nil, fmt.Errorf("the cloud keys the cloud announced: %w (delete the file to trust the configured cloud key again)", err)
	}
}

// learnTrust takes the params of an auth.cloud_keys the session signed by
// current received. The set must be valid and hold current: a set without
// it would lock the device out at its next connection. An unchanged set
// writes nothing.
func (b *Bridge) learnTrust(params json.RawMessage, current crypto.PublicKey) error {
	var p rpcproto.AuthCloudKeysParams
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return err
	}
	if len(p.Keys) == 0 || len(p.Keys) > keys.MaxKeySet {
		return fmt.Errorf("%d keys, want 1 to %d", len(p.Keys), keys.MaxKeySet)
	}
	ders := make([][]byte, len(p.Keys))
	for i, k := range p.Keys {
		der, err := base64.StdEncoding.Strict().DecodeString(k)
		if err != nil {
			return fmt.Errorf("key %d: not standard padded base64", i+1)
		}
		ders[i] = der
	}
	set, err := keys.ParsePublicDERs(ders)
	if err != nil {
		return err
	}
	own, err := keys.PublicDER(current)
	if err != nil {
		return err
	}
	if !containsDER(ders, own) {
		return errors.New("the set does not hold the key that signs this session")
	}
	if sameSet(*b.trust.Load(), ders) {
		return nil
	}
	data, err := keys.MarshalPublicPEMs(set)
	if err != nil {
		return err
	}
	if err := keys.WriteFileAtomic(filepath.Join(b.opts.DataDir, datadir.CloudKeysFile), data, 0o644); err != nil {
		return fmt.Errorf("storing the cloud keys: %w", err)
	}
	b.trust.Store(&set)
	fps := make([]string, len(ders))
	for i, d := range ders {
		fps[i] = keys.FingerprintDER(d)
	}
	b.log.Info("trusting the cloud keys the cloud announced", "fingerprints", fps)
	return nil
}

func containsDER(set [][]byte, der []byte) bool {
	for _, d := range set {
		if bytes.Equal(d, der) {
			return true
		}
	}
	return false
}

// sameSet reports whether trusted is exactly ders, in order.
func sameSet(trusted []crypto.PublicKey, ders [][]byte) bool {
	if len(trusted) != len(ders) {
		return false
	}
	for i, k := range trusted {
		der, err := keys.PublicDER(k)
		if err != nil || !bytes.Equal(der, ders[i]) {
			return false
		}
	}
	return true
}
