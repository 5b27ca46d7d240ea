// Command sessiond-nats is the plugin binary of the nats revocation-push provider.
//
//	go build -o sessiond-nats ./cmd/sessiond-nats
//	sessiond start --spi-revocation-push-provider=nats \
//	    --spi-revocation-push-nats-command=/path/to/sessiond-nats \
//	    --spi-revocation-push-nats-sha256=$(sha256sum sessiond-nats | cut -d' ' -f1)
package main

import (
	"github.com/sessiond/sessiond/plugins/examples/natspush"
	"github.com/sessiond/sessiond/plugins/sdk"
)

func main() {
	sdk.Serve(natspush.New(sdk.Logger(natspush.ID)))
}
