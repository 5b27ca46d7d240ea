// Command sessiond-redis is the plugin binary of the redis user-sessions provider. sessiond
// runs it; started by hand it says so and exits.
//
//	go build -o sessiond-redis ./cmd/sessiond-redis
//	sessiond start --spi-user-sessions-provider=redis \
//	    --spi-user-sessions-redis-command=/path/to/sessiond-redis \
//	    --spi-user-sessions-redis-sha256=$(sha256sum sessiond-redis | cut -d' ' -f1)
package main

import (
	"github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/plugins/examples/redisstore"
	"github.com/sessiond/sessiond/plugins/sdk"
)

func main() {
	log := sdk.Logger(redisstore.ID) // before Serve, which takes over stderr
	redis.SetLogger(redisstore.RedisLogger(log.Named("go-redis")))
	sdk.Serve(redisstore.New(log))
}
