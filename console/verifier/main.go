//go:build js && wasm

// Command verifier is package proof compiled to WebAssembly for the
// console: the browser checks a session proof itself, with the same Go
// code as `duet verify`. It sets globalThis.duetVerifier:
//
//	trust(genesisJSON)                      -> {"chain_id","validators_hash"} | {"error"}
//	verify(proof, chainID, validatorsHash)  -> proof.Report (valid, failed, error, ...)
//	receipt(proof, chainID, validatorsHash, receiptJSON) -> {"report", "promise", "error"}
//	certificate(proof, chainID, validatorsHash, certText) -> {"report", "certificate", "failed", "error"}
//
// Every function takes and returns strings (JSON). Build it with
// `go generate ./console`.
package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"syscall/js"

	"github.com/duet-bft/duet/proof"
)

func main() {
	api := map[string]any{
		"trust": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) != 1 {
				return errJSON("trust(genesisJSON)")
			}
			t, err := proof.TrustGenesis([]byte(args[0].String()))
			if err != nil {
				return errJSON(err.Error())
			}
			return toJSON(map[string]string{"chain_id": t.ChainID, "validators_hash": hex.EncodeToString(t.ValidatorsHash)})
		}),
		"verify": js.FuncOf(func(_ js.Value, args []js.Value) any {
			trust, doc, msg := parse(args, 3)
			if msg != "" {
				return errJSON(msg)
			}
			r, _ := proof.Verify(trust, doc)
			return toJSON(r)
		}),
		"receipt": js.FuncOf(func(_ js.Value, args []js.Value) any {
			trust, doc, msg := parse(args, 4)
			if msg != "" {
				return errJSON(msg)
			}
			var rc proof.Receipt
			if err := json.Unmarshal([]byte(args[3].String()), &rc); err != nil {
				return errJSON("receipt: " + err.Error())
			}
			r, p, err := proof.VerifyReceipt(trust, doc, rc)
			out := map[string]any{"report": r, "promise": p}
			if err != nil {
				out["error"] = err.Error()
			}
			return toJSON(out)
		}),
		"certificate": js.FuncOf(func(_ js.Value, args []js.Value) any {
			trust, doc, msg := parse(args, 4)
			if msg != "" {
				return errJSON(msg)
			}
			c, r, err := proof.VerifyCertificate(trust, []byte(args[3].String()), doc)
			out := map[string]any{"report": r, "certificate": c}
			var ce *proof.CheckError
			if errors.As(err, &ce) {
				out["failed"], out["error"] = ce.Check, ce.Err.Error()
			} else if err != nil {
				out["failed"], out["error"] = "certificate", err.Error()
			}
			return toJSON(out)
		}),
	}
	js.Global().Set("duetVerifier", js.ValueOf(api))
	select {}
}

func parse(args []js.Value, n int) (proof.Trust, []byte, string) {
	if len(args) != n {
		return proof.Trust{}, nil, "wrong number of arguments"
	}
	hash, err := hex.DecodeString(args[2].String())
	if err != nil || len(hash) != 32 {
		return proof.Trust{}, nil, "the validators hash must be 64 hex digits"
	}
	return proof.Trust{ChainID: args[1].String(), ValidatorsHash: hash}, []byte(args[0].String()), ""
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func errJSON(msg string) string { return toJSON(map[string]string{"error": msg}) }
