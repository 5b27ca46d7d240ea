package wire

import (
	"context"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/spipb"
)

// describeTimeout bounds Describe, whose signature has no context.
const describeTimeout = 10 * time.Second

type providerServer struct {
	spipb.UnimplementedProviderServer
	impl spi.Provider
}

func (s *providerServer) Describe(context.Context, *spipb.Empty) (*spipb.Descriptor, error) {
	return descriptorToPB(s.impl.Describe()), nil
}

func (s *providerServer) Configure(ctx context.Context, req *spipb.ConfigureRequest) (*spipb.Empty, error) {
	return &spipb.Empty{}, toStatus(s.impl.Configure(ctx, spi.Config(req.GetConfig())))
}

func (s *providerServer) Close(ctx context.Context, _ *spipb.Empty) (*spipb.Empty, error) {
	return &spipb.Empty{}, toStatus(s.impl.Close(ctx))
}

// providerClient is the spi.Provider part every SPI client shares.
type providerClient struct {
	spi string
	rpc spipb.ProviderClient
}

// Describe asks the plugin for its descriptor; it returns the zero Descriptor when the
// plugin cannot answer. Use DescribeContext to see why.
func (c providerClient) Describe() spi.Descriptor {
	ctx, cancel := context.WithTimeout(context.Background(), describeTimeout)
	defer cancel()
	d, _ := c.DescribeContext(ctx)
	return d
}

// DescribeContext is Describe with a context and the error of the call.
func (c providerClient) DescribeContext(ctx context.Context) (spi.Descriptor, error) {
	pb, err := c.rpc.Describe(ctx, &spipb.Empty{})
	if err != nil {
		return spi.Descriptor{}, c.fail(ctx, "Describe", err)
	}
	return descriptorFromPB(pb), nil
}

func (c providerClient) Configure(ctx context.Context, cfg spi.Config) error {
	_, err := c.rpc.Configure(ctx, &spipb.ConfigureRequest{Config: cfg})
	return c.fail(ctx, "Configure", err)
}

// Close asks the provider to release what it holds. It does not close the connection,
// which belongs to the host.
func (c providerClient) Close(ctx context.Context) error {
	_, err := c.rpc.Close(ctx, &spipb.Empty{})
	return c.fail(ctx, "Close", err)
}

// fail maps the error of one of this SPI's calls; nil stays nil.
func (c providerClient) fail(ctx context.Context, method string, err error) error {
	return fromStatus(ctx, fmt.Sprintf("%s %s", c.spi, method), err)
}

func descriptorToPB(d spi.Descriptor) *spipb.Descriptor {
	pb := &spipb.Descriptor{Spi: d.SPI, Id: d.ID, Version: d.Version, Help: d.Help}
	for _, o := range d.Options {
		pb.Options = append(pb.Options, &spipb.Option{
			Name: o.Name, Type: string(o.Type), Default: o.Default, Help: o.Help,
			Secret: o.Secret, Allowed: o.Allowed, Aliases: o.Aliases,
		})
	}
	return pb
}

func descriptorFromPB(pb *spipb.Descriptor) spi.Descriptor {
	d := spi.Descriptor{SPI: pb.GetSpi(), ID: pb.GetId(), Version: pb.GetVersion(), Help: pb.GetHelp()}
	for _, o := range pb.GetOptions() {
		d.Options = append(d.Options, spi.Option{
			Name: o.GetName(), Type: spi.OptionType(o.GetType()), Default: o.GetDefault(), Help: o.GetHelp(),
			Secret: o.GetSecret(), Allowed: o.GetAllowed(), Aliases: o.GetAliases(),
		})
	}
	return d
}
