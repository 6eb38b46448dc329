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

// Final is how a session ended.
type Final struct {
	Status string `json:"status"`
	Height int64  `json:"height,omitempty"`
	TxHash string `json:"tx_hash,omitempty"`
	Code   string `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
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
