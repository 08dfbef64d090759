package cloudinit_test

import (
	"testing"
	"time"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/cloudinit/turntest"
)

func TestJoinTurns(t *testing.T) {
	turntest.Run(t, func(_ *testing.T, ttl time.Duration, now func() time.Time) turntest.Keeper {
		return cloudinit.NewJoinTurns(ttl, now)
	})
}
