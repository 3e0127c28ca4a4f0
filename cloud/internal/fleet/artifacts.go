package fleet

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bosunhq/bosun/cloud/internal/artifacts"
	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// This file is OTA artifacts: uploads (bytes on disk through package
// artifacts, rows in the store), their listing and deletion, the
// per-device download tokens and the device → cloud methods ota.latest
// and ota.available.
//
// Bytes and rows: the bytes of a sha256 are one file, named by any number
// of rows. An upload places the file and inserts its row in a transaction
// holding the blob's advisory lock (store.InsertArtifact); a deletion
// deletes the row, counts the rows left and removes the file under the
// same lock (store.DeleteArtifact). So the
// deletion of the last row never removes the file an upload of the same
// bytes has just placed, on this replica or another one sharing the data
// directory.

// Artifact is an uploaded (name, version) of an organisation.
type Artifact = store.Artifact

// DefaultDownloadTokenTTL is how long a download token is valid unless
// Options.DownloadTokenTTL says otherwise.
const DefaultDownloadTokenTTL = 15 * time.Minute

// DownloadPath is the path of device downloads; a token follows it.
const DownloadPath = "/v1/ota/download/"

// OTA method names the cloud serves to devices (rpcproto's).
const (
	MethodOTALatest    = rpcproto.MethodOTALatest
	MethodOTAAvailable = rpcproto.MethodOTAAvailable
)

// ErrTooLarge is an upload beyond the size limit (nothing is stored).
var ErrTooLarge = artifacts.ErrTooLarge

// errNoArtifacts answers every artifact method when the cloud has no
// data directory.
var errNoArtifacts = &PublicError{Kind: ErrConflict, Msg: "this cloud stores no artifacts: start bosun-cloud serve with --data-dir (BOSUN_DATA_DIR)"}

// ArtifactRef names an artifact in audit rows: NAME@VERSION.
func ArtifactRef(a Artifact) string { return a.Name + "@" + a.Version }

// MaxArtifactSize is the size limit of one upload (0 when the cloud stores
// no artifacts).
func (s *Service) MaxArtifactSize() int64 {
	if s.opts.Artifacts == nil {
		return 0
	}
	return s.opts.Artifacts.MaxSize()
}

// UploadArtifact stores body as version of the artifact name in the
// actor's organisation (operators and up). The bytes stream to disk; a
// body beyond the size limit is ErrTooLarge, a (name, version) the
// organisation has already is ErrConflict; either way nothing is stored.
// The same bytes under another (name, version) are stored once. declared
// is the length the client announced (-1: unknown); beyond the limit it
// is refused before a byte is read.
func (s *Service) UploadArtifact(ctx context.Context, a Actor, name, version string, declared int64, body io.Reader) (Artifact, error) {
	org := a.OrgID
	if !a.operates(org) {
		return Artifact{}, fmt.Errorf("%w: role %s may not upload artifacts", ErrForbidden, a.Role)
	}
	ref := name + "@" + version
	art, err := s.uploadArtifact(ctx, a, org, name, version, declared, body)
	if err != nil {
		detail := map[string]any{"error": s.auditError("artifact.upload", ref, err)}
		if errors.Is(err, ErrTooLarge) {
			detail["max_bytes"] = s.MaxArtifactSize()
		}
		if errors.Is(err, ErrInvalid) {
			ref = "" // what was sent may be anything
		}
		s.audit(ctx, org, a, "artifact.upload", ref, "error", detail)
		return art, err
	}
	s.audit(ctx, org, a, "artifact.upload", ref, "ok", map[string]any{
		"id": art.ID, "sha256": hex.EncodeToString(art.SHA256), "length": art.Length})
	return art, nil
}

func (s *Service) uploadArtifact(ctx context.Context, a Actor, org int64, name, version string, declared int64, body io.Reader) (Artifact, error) {
	disk := s.opts.Artifacts
	if disk == nil {
		return Artifact{}, errNoArtifacts
	}
	if !artifacts.ValidName(name) {
		return Artifact{}, invalidf("an artifact name is 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
	}
	if !artifacts.ValidVersion(version) {
		return Artifact{}, invalidf("an artifact version is a semantic version 2.0.0 without a leading v (e.g. 1.2.3 or 1.2.3-rc.1), at most %d bytes", artifacts.MaxVersionLen)
	}
	conflict := &PublicError{Kind: ErrConflict, Msg: fmt.Sprintf("artifact %s version %s exists already; delete it first or upload another version", name, version)}
	// Refuse before the bytes arrive when we can; the insert decides.
	if _, err := s.st.ArtifactByVersion(ctx, org, name, version); err == nil {
		return Artifact{}, conflict
	} else if !errors.Is(err, store.ErrNotFound) {
		return Artifact{}, err
	}
	tooLarge := &PublicError{Kind: ErrTooLarge, Msg: fmt.Sprintf("the artifact is larger than this cloud's limit of %d bytes", disk.MaxSize())}
	if declared > disk.MaxSize() {
		return Artifact{}, tooLarge
	}
	up, err := disk.Receive(body)
	if errors.Is(err, artifacts.ErrTooLarge) {
		return Artifact{}, tooLarge
	}
	if err != nil {
		return Artifact{}, fmt.Errorf("receiving artifact: %w", err)
	}
	defer up.Discard()
	art, err := s.st.InsertArtifact(ctx, store.Artifact{OrgID: org, Name: name, Version: version,
		SHA256: up.SHA256[:], Length: up.Length, UploadedBy: a.Name()},
		up.Commit, func() error { return disk.Remove(up.SHA256) })
	if errors.Is(err, store.ErrConflict) {
		return Artifact{}, conflict
	}
	if err != nil {
		return Artifact{}, err
	}
	return art, nil
}

// ArtifactFilter selects artifacts.
type ArtifactFilter struct {
	Name string // "" for every name
}

// ListArtifacts lists the artifacts the actor sees (its organisation;
// every organisation for super users), by name, newest version first
// (semver precedence; equal precedence by version text).
func (s *Service) ListArtifacts(ctx context.Context, a Actor, f ArtifactFilter) ([]Artifact, error) {
	if !a.Role.Valid() {
		return nil, ErrForbidden
	}
	if f.Name != "" && !artifacts.ValidName(f.Name) {
		return nil, invalidf("an artifact name is 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
	}
	list, err := s.st.ListArtifacts(ctx, a.scope(), f.Name)
	if err != nil {
		return nil, err
	}
	sortArtifacts(list)
	if list == nil {
		list = []Artifact{}
	}
	return list, nil
}

// sortArtifacts orders by organisation, name, then newest version first.
func sortArtifacts(list []Artifact) {
	slices.SortFunc(list, func(x, y Artifact) int {
		if c := cmp.Compare(x.OrgID, y.OrgID); c != 0 {
			return c
		}
		if c := strings.Compare(x.Name, y.Name); c != 0 {
			return c
		}
		if c := artifacts.CompareVersions(y.Version, x.Version); c != 0 {
			return c
		}
		return strings.Compare(y.Version, x.Version)
	})
}

// GetArtifact returns an artifact the actor sees; another organisation's
// is ErrNotFound.
func (s *Service) GetArtifact(ctx context.Context, a Actor, id int64) (Artifact, error) {
	art, err := s.st.ArtifactByID(ctx, id)
	if err != nil {
		return Artifact{}, mapStoreErr(err)
	}
	if !a.sees(art.OrgID) {
		return Artifact{}, fmt.Errorf("%w: artifact %d", ErrNotFound, id)
	}
	return art, nil
}

// DeleteArtifact deletes an artifact (operators and up, in their
// organisation) and, when it was the last row naming its bytes, the bytes.
// Download tokens already handed out for it stop working.
func (s *Service) DeleteArtifact(ctx context.Context, a Actor, id int64) error {
	art, err := s.GetArtifact(ctx, a, id)
	if err != nil {
		return err
	}
	if !a.operates(art.OrgID) {
		return fmt.Errorf("%w: role %s may not delete artifacts", ErrForbidden, a.Role)
	}
	if s.opts.Artifacts == nil {
		return errNoArtifacts
	}
	removed, err := s.st.DeleteArtifact(ctx, id, func(sha []byte) error {
		var h [32]byte
		copy(h[:], sha)
		return s.opts.Artifacts.Remove(h)
	})
	if err != nil {
		return mapStoreErr(err)
	}
	s.audit(ctx, art.OrgID, a, "artifact.delete", ArtifactRef(art), "ok", map[string]any{
		"id": art.ID, "sha256": hex.EncodeToString(art.SHA256), "bytes_removed": removed})
	return nil
}

// MaxArtifactMetadata bounds the metadata of an artifact.
const MaxArtifactMetadata = 1 << 20

// SetArtifactMetadata stores metadata (a JSON document, the release's
// signed targets.json) with an artifact, as it is: this slice stores it
// and does not interpret it. Operators and up.
func (s *Service) SetArtifactMetadata(ctx context.Context, a Actor, id int64, metadata []byte) error {
	art, err := s.GetArtifact(ctx, a, id)
	if err != nil {
		return err
	}
	if !a.operates(art.OrgID) {
		return fmt.Errorf("%w: role %s may not change artifacts", ErrForbidden, a.Role)
	}
	if len(metadata) > MaxArtifactMetadata || !json.Valid(metadata) || !bytes.HasPrefix(bytes.TrimSpace(metadata), []byte("{")) {
		return invalidf("metadata must be a JSON object of at most %d bytes", MaxArtifactMetadata)
	}
	if !jsonbText(metadata) {
		return invalidf("metadata must be UTF-8 text without U+0000")
	}
	if err := s.st.SetArtifactMetadata(ctx, id, metadata); err != nil {
		return mapStoreErr(err)
	}
	s.audit(ctx, art.OrgID, a, "artifact.metadata", ArtifactRef(art), "ok", map[string]any{"id": art.ID, "bytes": len(metadata)})
	return nil
}

// jsonbText reports whether the valid JSON b can be stored as jsonb:
// PostgreSQL refuses invalid UTF-8 and U+0000 (as \u0000 too) in its
// strings, which would otherwise be a 500 from the store.
func jsonbText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	if !bytes.Contains(b, []byte(`\u0000`)) {
		return true
	}
	var v any
	if json.Unmarshal(b, &v) != nil {
		return false
	}
	var ok func(v any) bool
	ok = func(v any) bool {
		switch v := v.(type) {
		case string:
			return !strings.ContainsRune(v, 0)
		case []any:
			for _, e := range v {
				if !ok(e) {
					return false
				}
			}
		case map[string]any:
			for k, e := range v {
				if strings.ContainsRune(k, 0) || !ok(e) {
					return false
				}
			}
		}
		return true
	}
	return ok(v)
}

// Download tokens. A token is base64url(payload || mac) where payload is
// version (1 byte, 1) | artifact id (8 bytes) | expiry (unix seconds, 8
// bytes) | device id, and mac is HMAC-SHA256 over "bosun ota download\n"
// || payload with the key in ota_download_keys (made by the first replica
// that needs it, shared by all). It is a capability for one device and
// one artifact, handed to the device inside its signed session only; a
// download checks the mac, the expiry, that the artifact still exists
// and that the device still has an accepted key in the artifact's
// organisation.

const (
	tokenVersion = 1
	tokenMACLen  = sha256.Size
	tokenFixed   = 1 + 8 + 8
)

// ErrBadToken is a download token that is malformed, tampered with,
// expired, or whose device may no longer download.
var ErrBadToken = errors.New("invalid or expired download token")

func (s *Service) downloadKey(ctx context.Context) ([]byte, error) {
	s.dlKeyMu.Lock()
	defer s.dlKeyMu.Unlock()
	if s.dlKey != nil {
		return s.dlKey, nil
	}
	fresh := make([]byte, 32)
	rand.Read(fresh)
	key, err := s.st.DownloadKey(ctx, fresh)
	if err != nil {
		return nil, fmt.Errorf("loading the download key: %w", err)
	}
	s.dlKey = key
	return key, nil
}

func tokenMAC(key, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("bosun ota download\n"))
	m.Write(payload)
	return m.Sum(nil)
}

// DownloadToken makes a token for deviceID to download art, valid for
// Options.DownloadTokenTTL from now.
func (s *Service) DownloadToken(ctx context.Context, deviceID string, art Artifact) (string, time.Time, error) {
	return s.downloadTokenUntil(ctx, deviceID, art, time.Now().Add(s.opts.DownloadTokenTTL))
}

// downloadTokenUntil makes a token valid until exp (a deployment's, which
// lives as long as its queued call may wait; see sendUpdate).
func (s *Service) downloadTokenUntil(ctx context.Context, deviceID string, art Artifact, exp time.Time) (string, time.Time, error) {
	key, err := s.downloadKey(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	exp = exp.Truncate(time.Second)
	p := make([]byte, tokenFixed, tokenFixed+len(deviceID)+tokenMACLen)
	p[0] = tokenVersion
	binary.BigEndian.PutUint64(p[1:], uint64(art.ID))
	binary.BigEndian.PutUint64(p[9:], uint64(exp.Unix()))
	p = append(p, deviceID...)
	return base64.RawURLEncoding.EncodeToString(append(p, tokenMAC(key, p)...)), exp, nil
}

// DownloadURL is where the device downloads with token: the public URL
// (Options.PublicURL) + DownloadPath + token, or only the path when the
// cloud has no public URL (the device resolves it against the URL of its
// cloud).
func (s *Service) DownloadURL(token string) string {
	return strings.TrimSuffix(s.opts.PublicURL, "/") + DownloadPath + token
}

// Download is an artifact opened for a device's download.
type Download struct {
	Artifact Artifact
	DeviceID string
	File     *os.File // the caller closes it
}

// OpenDownload checks token and opens the artifact's bytes. Any token that
// does not verify, has expired, names a device without an accepted key
// in the artifact's organisation is ErrBadToken; an artifact deleted
// since is ErrNotFound.
func (s *Service) OpenDownload(ctx context.Context, token string) (Download, error) {
	if s.opts.Artifacts == nil {
		return Download{}, errNoArtifacts
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < tokenFixed+1+tokenMACLen || raw[0] != tokenVersion || len(token) > 512 {
		return Download{}, ErrBadToken
	}
	p, mac := raw[:len(raw)-tokenMACLen], raw[len(raw)-tokenMACLen:]
	key, err := s.downloadKey(ctx)
	if err != nil {
		return Download{}, err
	}
	if !hmac.Equal(mac, tokenMAC(key, p)) {
		return Download{}, ErrBadToken
	}
	id := int64(binary.BigEndian.Uint64(p[1:]))
	exp := time.Unix(int64(binary.BigEndian.Uint64(p[9:])), 0)
	deviceID := string(p[tokenFixed:])
	if !time.Now().Before(exp) {
		return Download{}, fmt.Errorf("%w: expired at %s", ErrBadToken, exp.UTC().Format(time.RFC3339))
	}
	art, err := s.st.ArtifactByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Download{}, fmt.Errorf("%w: artifact %d", ErrNotFound, id)
	}
	if err != nil {
		return Download{}, err
	}
	dev, err := s.st.GetDevice(ctx, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return Download{}, fmt.Errorf("%w: device %s is gone", ErrBadToken, deviceID)
	}
	if err != nil {
		return Download{}, err
	}
	if dev.OrgID != art.OrgID || !dev.HasAcceptedKey || dev.Status == "decommissioned" || dev.Status == "preauthorized" {
		return Download{}, fmt.Errorf("%w: device %s may not download", ErrBadToken, deviceID)
	}
	var sha [32]byte
	copy(sha[:], art.SHA256)
	f, err := s.opts.Artifacts.Open(sha)
	if errors.Is(err, artifacts.ErrNotFound) {
		return Download{}, fmt.Errorf("%w: bytes of artifact %d", ErrNotFound, id)
	}
	if err != nil {
		return Download{}, err
	}
	return Download{Artifact: art, DeviceID: deviceID, File: f}, nil
}

// OTA device methods.

// OTANameParams are the params of ota.latest and ota.available.
type OTANameParams struct {
	Name string `json:"name"`
}

// OTAVersion is one downloadable version of an artifact, with a fresh
// download URL for the asking device.
type OTAVersion struct {
	Name    string    `json:"name"`
	Version string    `json:"version"`
	SHA256  string    `json:"sha256"` // hex
	Length  int64     `json:"length"`
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"` // when URL stops working
}

// OTAAvailableResult is the result of ota.available.
type OTAAvailableResult struct {
	Versions []OTAVersion `json:"versions"` // newest first
}

// otaMethods are the OTA methods of DeviceMethods.
func (s *Service) otaMethods() map[string]jsonrpc.HandlerFunc {
	return map[string]jsonrpc.HandlerFunc{
		MethodOTALatest: jsonrpc.Handler(func(ctx context.Context, p OTANameParams) (OTAVersion, error) {
			vs, err := s.otaVersions(ctx, p.Name)
			if err != nil {
				return OTAVersion{}, err
			}
			if len(vs) == 0 {
				return OTAVersion{}, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "no artifact of this name", map[string]string{"name": p.Name})
			}
			return vs[0], nil
		}),
		MethodOTAAvailable: jsonrpc.Handler(func(ctx context.Context, p OTANameParams) (OTAAvailableResult, error) {
			vs, err := s.otaVersions(ctx, p.Name)
			return OTAAvailableResult{Versions: vs}, err
		}),
		rpcproto.MethodOTAStatus:   jsonrpc.Handler(s.otaStatus),   // ota_status.go
		rpcproto.MethodOTAMetadata: jsonrpc.Handler(s.otaMetadata), // release.go
	}
}

// otaVersions lists the versions of name in the calling device's
// organisation, newest first, each with a fresh download URL.
func (s *Service) otaVersions(ctx context.Context, name string) ([]OTAVersion, error) {
	dev, ok := DeviceFromContext(ctx)
	if !ok {
		return nil, notAccepted
	}
	if !artifacts.ValidName(name) {
		return nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "invalid params: name must be an artifact name (^[a-z0-9][a-z0-9._-]{0,63}$)", nil)
	}
	if s.opts.Artifacts == nil {
		return nil, jsonrpc.NewError(jsonrpc.CodeInternalError, "this cloud stores no artifacts", nil)
	}
	list, err := s.st.ListArtifacts(ctx, dev.OrgID, name)
	if err != nil {
		return nil, err
	}
	sortArtifacts(list)
	out := make([]OTAVersion, 0, len(list))
	for _, a := range list {
		tok, exp, err := s.DownloadToken(ctx, dev.ID, a)
		if err != nil {
			return nil, err
		}
		out = append(out, OTAVersion{Name: a.Name, Version: a.Version, SHA256: hex.EncodeToString(a.SHA256),
			Length: a.Length, URL: s.DownloadURL(tok), Expires: exp})
	}
	return out, nil
}
