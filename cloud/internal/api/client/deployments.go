package client

import (
	"context"
	"net/url"
	"strconv"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
)

// CreateDeployment starts a deployment.
func (c *Client) CreateDeployment(ctx context.Context, req wire.DeploymentRequest) (wire.Deployment, error) {
	var d wire.Deployment
	_, err := c.do(ctx, "POST", "/deployments", nil, req, &d)
	return d, err
}

// ListDeployments lists deployments (of one state unless state is ""),
// newest first.
func (c *Client) ListDeployments(ctx context.Context, state string, limit int) ([]wire.Deployment, error) {
	q := url.Values{}
	setIf(q, "state", state)
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out wire.DeploymentList
	_, err := c.do(ctx, "GET", "/deployments", q, nil, &out)
	return out.Items, err
}

// Deployment returns a deployment and its members.
func (c *Client) Deployment(ctx context.Context, id int64) (wire.DeploymentDetail, error) {
	var d wire.DeploymentDetail
	_, err := c.do(ctx, "GET", "/deployments/"+strconv.FormatInt(id, 10), nil, nil, &d)
	return d, err
}

// DeploymentAction posts pause, resume or abort to a deployment.
func (c *Client) DeploymentAction(ctx context.Context, id int64, action string) (wire.Deployment, error) {
	var d wire.Deployment
	_, err := c.do(ctx, "POST", "/deployments/"+strconv.FormatInt(id, 10)+"/"+url.PathEscape(action), nil, nil, &d)
	return d, err
}

// OTAVersions is the fleet's version breakdown of artifact name.
func (c *Client) OTAVersions(ctx context.Context, name string) (wire.VersionList, error) {
	var out wire.VersionList
	_, err := c.do(ctx, "GET", "/ota/versions", url.Values{"name": {name}}, nil, &out)
	return out, err
}
