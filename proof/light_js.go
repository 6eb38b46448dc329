//go:build js

package proof

import "github.com/duet-bft/duet/proof/internal/light"

// The light client's checks for WebAssembly: CometBFT's light package does
// not build for js/wasm as a whole (its client and providers pull in RPC
// and databases), so the three files the checks live in are copied verbatim
// into internal/light; TestLightCopy fails if they drift from go.mod's
// CometBFT.
var (
	lightVerifyBackwards = light.VerifyBackwards
	lightVerify          = light.Verify
	lightTrustLevel      = light.DefaultTrustLevel
)
