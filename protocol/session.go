package protocol

import "encoding/json"

// Session statuses, as an L2 node reports them.
const (
	StatusOpen       = "open"
	StatusCommitting = "committing"
	StatusCommitted  = "committed"
	StatusRejected   = "rejected"
	StatusAborted    = "aborted"
)

// Final is how a session ended. Its JSON is
// {"status":"committed","l1":{"height":H,"tx_hash":"..."}} or
// {"status":"rejected","error":{"code":"CONFLICT","message":"..."}}.
type Final struct {
	Status string
	Height int64  // L1 height that applied the session
	TxHash string // L1 transaction that carried it
	Code   string // why not, for rejected (and expired) sessions
	Reason string
}

type finalJSON struct {
	Status string `json:"status"`
	L1     *struct {
		Height int64  `json:"height"`
		TxHash string `json:"tx_hash"`
	} `json:"l1,omitempty"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// MarshalJSON encodes f in the shape of the HTTP contract.
func (f Final) MarshalJSON() ([]byte, error) {
	j := finalJSON{Status: f.Status}
	if f.Height != 0 || f.TxHash != "" {
		j.L1 = &struct {
			Height int64  `json:"height"`
			TxHash string `json:"tx_hash"`
		}{f.Height, f.TxHash}
	}
	if f.Code != "" || f.Reason != "" {
		j.Error = &struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}{f.Code, f.Reason}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON produces.
func (f *Final) UnmarshalJSON(b []byte) error {
	var j finalJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*f = Final{Status: j.Status}
	if j.L1 != nil {
		f.Height, f.TxHash = j.L1.Height, j.L1.TxHash
	}
	if j.Error != nil {
		f.Code, f.Reason = j.Error.Code, j.Error.Message
	}
	return nil
}

// OpResult is one kept op of a session as clients see it.
type OpResult struct {
	Seq    uint64          `json:"seq"`
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Status int             `json:"status"`
	Result json.RawMessage `json:"result"`
	Time   int64           `json:"time"`
	OpHash string          `json:"op_hash"`
}

// Event is one entry of a session's event stream.
type Event struct {
	Type   string    `json:"type"` // "op", "status" or "final"
	Op     *OpResult `json:"op,omitempty"`
	Status string    `json:"status"`
	Final  *Final    `json:"final,omitempty"`
}

// SessionView is a session as GET /v1/sessions/{id} shows it.
type SessionView struct {
	ID     string     `json:"id"`
	Actor  string     `json:"actor"`
	Status string     `json:"status"`
	Direct bool       `json:"direct,omitempty"`
	Ops    []OpResult `json:"ops"`
	Final  *Final     `json:"final,omitempty"`
}
