module github.com/sessiond/sessiond

go 1.26.8
