// Package light holds verbatim copies of verifier.go, errors.go and
// trust_options.go of CometBFT's light package (the version go.mod names),
// for the WebAssembly build of package proof: CometBFT's light package as a
// whole does not build for js/wasm. Native builds use CometBFT's own
// package. proof's TestLightCopy fails if a copy differs from its original;
// refresh them with `go generate ./proof`.
package light
