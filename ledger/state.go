package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cosmos/iavl"
)

// State values are stored as uvarint(version) || value, so the app hash
// commits to every key's version as well as its value.
func encodeValue(version uint64, value []byte) []byte {
	b := binary.AppendUvarint(make([]byte, 0, 10+len(value)), version)
	return append(b, value...)
}

func decodeValue(raw []byte) (value []byte, version uint64, err error) {
	if raw == nil {
		return nil, 0, nil
	}
	v, n := binary.Uvarint(raw)
	if n <= 0 {
		return nil, 0, errors.New("ledger: corrupt state value")
	}
	return raw[n:], v, nil
}

// getter is what IAVL's mutable and immutable trees share.
type getter interface {
	Get(key []byte) ([]byte, error)
}

// treeStore adapts an IAVL tree to service.Store.
type treeStore struct{ t getter }

func (s treeStore) Get(key string) ([]byte, uint64, error) {
	raw, err := s.t.Get([]byte(key))
	if err != nil {
		return nil, 0, fmt.Errorf("state get %q: %w", key, err)
	}
	return decodeValue(raw)
}

var _ getter = (*iavl.MutableTree)(nil)
var _ getter = (*iavl.ImmutableTree)(nil)
