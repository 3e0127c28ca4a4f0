package client

import (
	"context"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
)

// Release returns the organisation's release repository and the cloud's
// online public keys.
func (c *Client) Release(ctx context.Context) (wire.Release, error) {
	var out wire.Release
	_, err := c.do(ctx, "GET", "/release", nil, nil, &out)
	return out, err
}

// UploadRelease uploads signed root.json files (oldest first) and/or a
// targets.json.
func (c *Client) UploadRelease(ctx context.Context, up wire.ReleaseUpload) (wire.Release, error) {
	var out wire.Release
	_, err := c.do(ctx, "PUT", "/release", nil, up, &out)
	return out, err
}
