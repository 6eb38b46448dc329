//go:build !js

package proof

import (
	"time"

	"github.com/cometbft/cometbft/light"
	"github.com/cometbft/cometbft/types"
)

// The light client's checks, from CometBFT's light package. (Built for
// WebAssembly, the same functions come from a verbatim copy: light_js.go.)

func lightVerifyBackwards(untrusted, trusted *types.Header) error {
	return light.VerifyBackwards(untrusted, trusted)
}

func lightVerify(trustedHeader *types.SignedHeader, trustedVals *types.ValidatorSet,
	untrustedHeader *types.SignedHeader, untrustedVals *types.ValidatorSet,
	trustingPeriod time.Duration, now time.Time, maxClockDrift time.Duration) error {
	return light.Verify(trustedHeader, trustedVals, untrustedHeader, untrustedVals, trustingPeriod, now, maxClockDrift, light.DefaultTrustLevel)
}
