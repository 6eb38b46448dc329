// Package duettest is what tests of applications and of the framework use
// to run an application on both layers in one process: an L2 buffer and an
// L1 ledger (the real ones, with a real write-ahead log and IAVL store),
// joined without CometBFT or a network; and CheckOpenAPI, which checks the
// document an L2 node of the app serves. Like net/http/httptest, it is for
// tests only.
package duettest
