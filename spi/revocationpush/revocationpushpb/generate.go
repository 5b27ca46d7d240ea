// Package revocationpushpb is the generated gRPC form of the revocation-push SPI
// (package revocationpush); plugins/wire converts between the two.
package revocationpushpb

//go:generate protoc -I ../../.. --go_out=../../.. --go_opt=module=github.com/sessiond/sessiond --go-grpc_out=../../.. --go-grpc_opt=module=github.com/sessiond/sessiond spi/revocationpush/revocationpushpb/revocationpush.proto
