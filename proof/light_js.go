//go:build js

package proof

import (
	"time"

	"github.com/cometbft/cometbft/types"

	"github.com/duet-bft/duet/proof/internal/light"
)

// The light client's checks for WebAssembly: CometBFT's light package does
// not build for js/wasm as a whole (its client and providers pull in RPC
// and databases), so the three files the checks live in are copied verbatim
// into internal/light; TestLightCopy fails if they drift from go.mod's
// CometBFT.

func lightVerifyBackwards(untrusted, trusted *types.Header) error {
	return light.VerifyBackwards(untrusted, trusted)
}

func lightVerify(trustedHeader *types.SignedHeader, trustedVals *types.ValidatorSet,
	untrustedHeader *types.SignedHeader, untrustedVals *types.ValidatorSet,
	trustingPeriod time.Duration, now time.Time, maxClockDrift time.Duration) error {
	return light.Verify(trustedHeader, trustedVals, untrustedHeader, untrustedVals, trustingPeriod, now, maxClockDrift, light.DefaultTrustLevel)
}
