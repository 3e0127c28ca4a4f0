module github.com/bosunhq/bosun/cloud

go 1.26

require github.com/bosunhq/bosun/pkg v0.0.0

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/pgx/v5 v5.12.0 // indirect
	golang.org/x/text v0.41.0 // indirect
)

// The workspace (go.work) resolves this too; the replace keeps `go mod tidy`
// and single-module builds working without a published pkg module.
replace github.com/bosunhq/bosun/pkg => ../pkg
