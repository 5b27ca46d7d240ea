// Package usersessionspb is the generated gRPC form of the user-sessions SPI
// (package usersessions); plugins/wire converts between the two.
package usersessionspb

//go:generate protoc -I ../../.. --go_out=../../.. --go_opt=module=github.com/sessiond/sessiond --go-grpc_out=../../.. --go-grpc_opt=module=github.com/sessiond/sessiond spi/usersessions/usersessionspb/usersessions.proto
