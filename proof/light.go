//go:build !js

package proof

import "github.com/cometbft/cometbft/light"

// The light client's checks, from CometBFT's light package. (Built for
// WebAssembly, the same functions come from a verbatim copy: light_js.go.)
var (
	lightVerifyBackwards = light.VerifyBackwards
	lightVerify          = light.Verify
	lightTrustLevel      = light.DefaultTrustLevel
)
