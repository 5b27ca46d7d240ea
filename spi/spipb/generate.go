// Package spipb is the generated gRPC form of package spi: the Provider service every
// plugin serves, and the messages the four SPI services share.
package spipb

//go:generate protoc -I ../.. --go_out=../.. --go_opt=module=github.com/sessiond/sessiond --go-grpc_out=../.. --go-grpc_opt=module=github.com/sessiond/sessiond spi/spipb/spi.proto
