// Package keys generates, saves and loads the Ed25519 and RSA keys that sign
// Bosun envelopes, and names them by fingerprint.
//
// Private keys are PKCS#8 PEM files written atomically with mode 0600; public
// keys are SPKI ("PUBLIC KEY") PEM. A fingerprint is "SHA256:" followed by the
// unpadded standard base64 of the SHA-256 of the DER SPKI, the form OpenSSH
// shows, so operators can compare what the dashboard shows with what a device
// prints.
package keys

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Algorithm names, as they appear in the envelope's "alg" field.
const (
	AlgEd25519 = "ed25519"
	AlgRSAPSS  = "rsa-pss-sha256"
)

// MinRSABits is the smallest RSA modulus Bosun accepts, for signing or
// verifying.
const MinRSABits = 2048

var (
	// ErrUnsupportedKey is returned for keys that are neither Ed25519 nor RSA.
	ErrUnsupportedKey = errors.New("keys: unsupported key type")
	// ErrWeakKey is returned for RSA keys smaller than MinRSABits.
	ErrWeakKey = errors.New("keys: RSA key smaller than 2048 bits")
	// ErrNoPEM is returned when a file holds no PEM block of the expected type.
	ErrNoPEM = errors.New("keys: no PEM block found")
)

// Generate makes a new private key. alg is AlgEd25519 or AlgRSAPSS; bits is
// used only for RSA and defaults to 3072 when zero.
func Generate(alg string, bits int) (crypto.Signer, error) {
	switch alg {
	case AlgEd25519, "":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case AlgRSAPSS, "rsa":
		if bits == 0 {
			bits = 3072
		}
		if bits < MinRSABits {
			return nil, ErrWeakKey
		}
		return rsa.GenerateKey(rand.Reader, bits)
	default:
		return nil, fmt.Errorf("%w: algorithm %q", ErrUnsupportedKey, alg)
	}
}

// Alg returns the envelope algorithm for a public key, refusing RSA keys
// below MinRSABits and any other key type.
func Alg(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", fmt.Errorf("%w: bad ed25519 key length %d", ErrUnsupportedKey, len(k))
		}
		return AlgEd25519, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return "", ErrWeakKey
		}
		return AlgRSAPSS, nil
	default:
		return "", fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
	}
}

// PublicDER returns the DER SPKI encoding of pub.
func PublicDER(pub crypto.PublicKey) ([]byte, error) {
	if _, err := Alg(pub); err != nil {
		return nil, err
	}
	return x509.MarshalPKIXPublicKey(pub)
}

// ParsePublicDER parses a DER SPKI public key and checks it is usable.
func ParsePublicDER(der []byte) (crypto.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("keys: parsing public key: %w", err)
	}
	if _, err := Alg(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// Fingerprint returns "SHA256:" plus the unpadded base64 SHA-256 of the DER
// SPKI of pub.
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := PublicDER(pub)
	if err != nil {
		return "", err
	}
	return FingerprintDER(der), nil
}

// FingerprintDER is Fingerprint for a key already in DER SPKI form.
func FingerprintDER(der []byte) string {
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// MarshalPublicPEM encodes pub as an SPKI "PUBLIC KEY" PEM block.
func MarshalPublicPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := PublicDER(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicPEM decodes the first "PUBLIC KEY" PEM block of data.
func ParsePublicPEM(data []byte) (crypto.PublicKey, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, ErrNoPEM
		}
		if b.Type == "PUBLIC KEY" {
			return ParsePublicDER(b.Bytes)
		}
	}
}

// MaxKeySet bounds a set of trusted keys (ParsePublicPEMs): the cloud's
// current and next key during a rotation, with room to spare.
const MaxKeySet = 4

// ParsePublicPEMs decodes every "PUBLIC KEY" PEM block of data: a set of
// trusted keys, in order, without duplicates. It refuses an empty set, more
// than MaxKeySet keys, and any key ParsePublicDER refuses.
func ParsePublicPEMs(data []byte) ([]crypto.PublicKey, error) {
	var set [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type == "PUBLIC KEY" {
			set = append(set, b.Bytes)
		}
	}
	if len(set) == 0 {
		return nil, ErrNoPEM
	}
	return ParsePublicDERs(set)
}

// ParsePublicDERs parses a set of DER SPKI keys as ParsePublicPEMs does.
func ParsePublicDERs(ders [][]byte) ([]crypto.PublicKey, error) {
	if len(ders) == 0 {
		return nil, errors.New("keys: no key in the set")
	}
	if len(ders) > MaxKeySet {
		return nil, fmt.Errorf("keys: %d keys in the set, at most %d", len(ders), MaxKeySet)
	}
	out := make([]crypto.PublicKey, 0, len(ders))
	seen := make(map[string]bool, len(ders))
	for i, der := range ders {
		k, err := ParsePublicDER(der)
		if err != nil {
			return nil, fmt.Errorf("key %d of the set: %w", i+1, err)
		}
		if seen[string(der)] {
			return nil, fmt.Errorf("keys: key %d of the set is there twice", i+1)
		}
		seen[string(der)] = true
		out = append(out, k)
	}
	return out, nil
}

// MarshalPublicPEMs encodes a key set as consecutive "PUBLIC KEY" blocks.
func MarshalPublicPEMs(set []crypto.PublicKey) ([]byte, error) {
	var out []byte
	for _, k := range set {
		b, err := MarshalPublicPEM(k)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// LoadPublics reads a PEM file holding a set of public keys
// (ParsePublicPEMs).
func LoadPublics(path string) ([]crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	set, err := ParsePublicPEMs(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return set, nil
}

// MarshalPrivatePEM encodes key as a PKCS#8 "PRIVATE KEY" PEM block.
func MarshalPrivatePEM(key crypto.Signer) ([]byte, error) {
	if _, err := Alg(key.Public()); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("keys: encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivatePEM decodes a PKCS#8 "PRIVATE KEY" block (or a PKCS#1 "RSA
// PRIVATE KEY" block, as openssl writes them) and checks the key is usable.
func ParsePrivatePEM(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, ErrNoPEM
		}
		var (
			k   any
			err error
		)
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("keys: parsing private key: %w", err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, k)
		}
		if _, err := Alg(s.Public()); err != nil {
			return nil, err
		}
		return s, nil
	}
}

// SavePrivate writes key to path as PKCS#8 PEM with mode 0600, atomically:
// a temporary file in the same directory is written, synced and renamed, so a
// crash never leaves a half-written key behind.
func SavePrivate(path string, key crypto.Signer) error {
	data, err := MarshalPrivatePEM(key)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data, 0o600)
}

// LoadPrivate reads a private key written by SavePrivate (or openssl).
func LoadPrivate(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePrivatePEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// SavePublic writes pub to path as SPKI PEM with mode 0644, atomically.
func SavePublic(path string, pub crypto.PublicKey) error {
	data, err := MarshalPublicPEM(pub)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data, 0o644)
}

// LoadPublic reads an SPKI PEM public key.
func LoadPublic(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePublicPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadOrGenerate loads the private key at path, or generates one of alg and
// saves it there when the file does not exist. It never overwrites a file.
func LoadOrGenerate(path, alg string, bits int) (key crypto.Signer, created bool, err error) {
	key, err = LoadPrivate(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	key, err = Generate(alg, bits)
	if err != nil {
		return nil, false, err
	}
	data, err := MarshalPrivatePEM(key)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	// O_EXCL: a concurrent creator wins and we load its key instead.
	if err := writeExclusive(path, data, 0o600); err != nil {
		if errors.Is(err, os.ErrExist) {
			key, err = LoadPrivate(path)
			return key, false, err
		}
		return nil, false, err
	}
	return key, true, nil
}

func writeExclusive(path string, data []byte, mode os.FileMode) error {
	tmp, err := writeTemp(path, data, mode)
	if err != nil {
		return err
	}
	// Link fails if path exists, so an existing key is never replaced.
	err = os.Link(tmp, path)
	os.Remove(tmp)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return os.ErrExist
		}
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// WriteFileAtomic writes data to path through a synced temporary file and a
// rename, then syncs the directory.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := writeTemp(path, data, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(path))
}

func writeTemp(path string, data []byte, mode os.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(name)
		return "", err
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// SyncDir makes a directory's entries (renames, creations, removals)
// durable: what WriteFileAtomic does after its rename, for callers that
// rename or remove files themselves.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
