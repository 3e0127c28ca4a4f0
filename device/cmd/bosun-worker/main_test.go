package main

import "testing"

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr bool
		check   func(t *testing.T, c Config)
	}{
		{name: "defaults", check: func(t *testing.T, c Config) {
			if c.DataDir != "/var/lib/bosun" || c.DockerHost != "unix:///var/run/docker.sock" || c.DiskPath != "/" {
				t.Errorf("%+v", c)
			}
		}},
		{name: "env", env: map[string]string{"BOSUN_DATA_DIR": "/d", "DOCKER_HOST": "unix:///run/podman/podman.sock", "BOSUN_NATS_URL": "nats://x"},
			check: func(t *testing.T, c Config) {
				if c.DataDir != "/d" || c.DockerHost != "unix:///run/podman/podman.sock" || c.NATSURL != "nats://x" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "flag beats env", args: []string{"--data-dir", "/f"}, env: map[string]string{"BOSUN_DATA_DIR": "/d"},
			check: func(t *testing.T, c Config) {
				if c.DataDir != "/f" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "bad log level", env: map[string]string{"BOSUN_LOG_LEVEL": "loud"}, wantErr: true},
		{name: "stray argument", args: []string{"extra"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(tt.args, func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}
