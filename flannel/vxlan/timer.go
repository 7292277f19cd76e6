package vxlan

import (
	"context"
	"time"
)

// timeAfter paces re-subscription after a broken netlink subscription.
func timeAfter(ctx context.Context) <-chan time.Time { return time.After(time.Second) }
