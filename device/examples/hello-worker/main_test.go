package main

import (
	"context"
	"errors"
	"testing"

	"github.com/bosunhq/bosun/pkg/jsonrpc"
)

func TestGreet(t *testing.T) {
	tests := []struct {
		name     string
		p        GreetParams
		want     string
		wantCode int
	}{
		{"named", GreetParams{Name: "Ada"}, "hello, Ada", 0},
		{"no name", GreetParams{}, "", jsonrpc.CodeInvalidParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := greet(context.Background(), tt.p)
			var e *jsonrpc.Error
			if tt.wantCode != 0 {
				if !errors.As(err, &e) || e.Code != tt.wantCode {
					t.Fatalf("err = %v, want code %d", err, tt.wantCode)
				}
				return
			}
			if err != nil || r.Greeting != tt.want {
				t.Errorf("got %+v, %v", r, err)
			}
		})
	}
}
