package ledger

import "github.com/duet-bft/duet/service"

// CommittedKVs returns every key of the last committed state that does not
// start with exclude, in key order, with its value (the version prefix
// removed). Tests use it to compare the ledger's state with a direct
// application of the same sessions.
func (a *App) CommittedKVs(exclude string) ([]service.KV, error) {
	a.mu.RLock()
	imm := a.mu.committed
	a.mu.RUnlock()
	var (
		out []service.KV
		err error
	)
	_, ierr := imm.Iterate(func(key, raw []byte) bool {
		if exclude != "" && len(key) >= len(exclude) && string(key[:len(exclude)]) == exclude {
			return false
		}
		var v []byte
		if v, _, err = decodeValue(raw); err != nil {
			return true
		}
		out = append(out, service.KV{Key: string(key), Value: append([]byte(nil), v...)})
		return false
	})
	if err == nil {
		err = ierr
	}
	return out, err
}

// EncodeValue exposes the stored form of a value (uvarint version || value),
// which /store proofs commit to.
var EncodeValue = encodeValue
