// Package cachelifespanpb is the generated gRPC form of the cache-lifespan SPI
// (package cachelifespan); plugins/wire converts between the two.
package cachelifespanpb

//go:generate protoc -I ../../.. --go_out=../../.. --go_opt=module=github.com/sessiond/sessiond --go-grpc_out=../../.. --go-grpc_opt=module=github.com/sessiond/sessiond spi/cachelifespan/cachelifespanpb/cachelifespan.proto
