package api

import (
	"net/http"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// NewWithHeartbeat is New with a shorter event heartbeat, for tests that
// want to see one without waiting 15s.
func NewWithHeartbeat(svc *fleet.Service, heartbeat time.Duration) http.Handler {
	return newHandler(svc, nil, &options{Heartbeat: heartbeat})
}
