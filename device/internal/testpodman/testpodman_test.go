package testpodman_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/bosunhq/bosun/device/internal/testpodman"
)

func TestSocketListsTheDemoContainer(t *testing.T) {
	client := testpodman.HTTPClient(t, testpodman.Socket(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/v1.41/containers/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /v1.41/containers/json: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1.41/containers/json: status %s", resp.Status)
	}

	var containers []struct {
		ID    string `json:"Id"`
		Names []string
		State string
	}
	if err := json.NewDecoder(resp.Body).Decode(&containers); err != nil {
		t.Fatalf("decoding the container list: %v", err)
	}
	want := "/" + testpodman.DemoContainer()
	for _, c := range containers {
		if slices.Contains(c.Names, want) {
			if c.State != "running" {
				t.Fatalf("container %s is %q, want running", want, c.State)
			}
			return
		}
	}
	t.Fatalf("no container %s among the %d running: %+v", want, len(containers), containers)
}
