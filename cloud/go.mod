module github.com/bosunhq/bosun/cloud

go 1.26

require github.com/bosunhq/bosun/pkg v0.0.0

// The workspace (go.work) resolves this too; the replace keeps `go mod tidy`
// and single-module builds working without a published pkg module.
replace github.com/bosunhq/bosun/pkg => ../pkg
