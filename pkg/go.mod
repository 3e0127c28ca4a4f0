module github.com/bosunhq/bosun/pkg

go 1.26

require (
	github.com/coder/websocket v1.8.15
	go.uber.org/goleak v1.3.0
)
