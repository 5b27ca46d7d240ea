// Package offlinepreloadpb is the generated gRPC form of the offline-preload SPI
// (package offlinepreload); plugins/wire converts between the two.
package offlinepreloadpb

//go:generate protoc -I ../../.. --go_out=../../.. --go_opt=module=github.com/sessiond/sessiond --go-grpc_out=../../.. --go-grpc_opt=module=github.com/sessiond/sessiond spi/offlinepreload/offlinepreloadpb/offlinepreload.proto
