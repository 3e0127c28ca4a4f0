package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
)

// UploadArtifact streams length bytes of body (-1: unknown) as version of
// the artifact name.
func (c *Client) UploadArtifact(ctx context.Context, name, version string, body io.Reader, length int64) (wire.Artifact, error) {
	q := url.Values{"name": {name}, "version": {version}}
	resp, err := c.sendReader(ctx, "POST", "/artifacts", q, body, length, "application/octet-stream", "application/json")
	if err != nil {
		return wire.Artifact{}, err
	}
	defer resp.Body.Close()
	var a wire.Artifact
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return a, fmt.Errorf("POST /artifacts: decoding answer: %w", err)
	}
	return a, nil
}

// ListArtifacts lists artifacts (of one name unless name is ""), by name,
// newest version first.
func (c *Client) ListArtifacts(ctx context.Context, name string) ([]wire.Artifact, error) {
	q := url.Values{}
	setIf(q, "name", name)
	var out wire.ArtifactList
	_, err := c.do(ctx, "GET", "/artifacts", q, nil, &out)
	return out.Items, err
}

// Artifact returns one artifact.
func (c *Client) Artifact(ctx context.Context, id int64) (wire.Artifact, error) {
	var a wire.Artifact
	_, err := c.do(ctx, "GET", "/artifacts/"+strconv.FormatInt(id, 10), nil, nil, &a)
	return a, err
}

// DeleteArtifact deletes one artifact.
func (c *Client) DeleteArtifact(ctx context.Context, id int64) error {
	_, err := c.do(ctx, "DELETE", "/artifacts/"+strconv.FormatInt(id, 10), nil, nil, nil)
	return err
}
