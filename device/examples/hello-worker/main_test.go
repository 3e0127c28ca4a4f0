package main

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/bosunhq/bosun/device/worker"
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

// TestGreetParamsStrict: through worker.Func, as the worker serves it, a
// member that is not exactly "name" never reaches greet.
func TestGreetParamsStrict(t *testing.T) {
	h := worker.Func(greet)
	tests := []struct {
		name   string
		params string
		want   string // the error message; "" means greet answers
	}{
		{"exact", `{"name":"Ada"}`, ""},
		{"case variant", `{"Name":"Ada"}`, `Invalid params: unknown field "Name"`},
		{"unknown", `{"name":"Ada","nmae":"Eve"}`, `Invalid params: unknown field "nmae"`},
		{"duplicate", `{"name":"Ada","name":"Eve"}`, `Invalid params: duplicate field "name"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := h(context.Background(), json.RawMessage(tt.params))
			if tt.want == "" {
				if err != nil || r.(GreetResult).Greeting != "hello, Ada" {
					t.Fatalf("got %+v, %v", r, err)
				}
				return
			}
			var e *jsonrpc.Error
			if !errors.As(err, &e) || e.Code != jsonrpc.CodeInvalidParams || e.Message != tt.want {
				t.Fatalf("err = %#v, want code %d %s", err, jsonrpc.CodeInvalidParams, tt.want)
			}
		})
	}
}
