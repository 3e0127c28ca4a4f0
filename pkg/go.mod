module github.com/bosunhq/bosun/pkg

go 1.26
