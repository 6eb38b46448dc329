package chain

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/mempool"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	rpctypes "github.com/cometbft/cometbft/rpc/jsonrpc/types"

	"github.com/duet-bft/duet/protocol"
)

// Submitter broadcasts transactions to L1 nodes over CometBFT RPC, trying
// each node in turn from the last one that worked.
//
// Whether a failure is permanent is decided here, with types: a
// *RejectedError (CheckTx refused the transaction, or it is larger than
// any node takes) is permanent; any other error is transient.
type Submitter struct {
	clients []*rpchttp.HTTP
	urls    []string
	mu      sync.Mutex
	next    int
}

// RejectedError is a transaction CheckTx refused: resubmitting it as is
// will not help.
type RejectedError struct {
	Code uint32
	Log  string
}

// Rejected returns the CheckTx code and log.
func (e *RejectedError) Rejected() (uint32, string) { return e.Code, e.Log }

func (e *RejectedError) Error() string {
	return fmt.Sprintf("chain: CheckTx rejected (code %d): %s", e.Code, e.Log)
}

// NewSubmitter returns a submitter over the RPC URLs (http://host:port).
func NewSubmitter(urls []string) (*Submitter, error) {
	if len(urls) == 0 {
		return nil, errors.New("chain: no L1 RPC address to submit to")
	}
	s := &Submitter{urls: urls}
	for _, u := range urls {
		c, err := rpchttp.New(u, "/websocket")
		if err != nil {
			return nil, fmt.Errorf("chain: rpc client %s: %w", u, err)
		}
		s.clients = append(s.clients, c)
	}
	return s, nil
}

// AttemptTimeout bounds one node's answer, so a node that hangs (rather
// than refusing the connection) does not hold up the failover.
const AttemptTimeout = 2 * time.Second

// Submit broadcasts tx (broadcast_tx_sync) to the first node that takes it.
// A tx already in a node's mempool cache is pending there or was refused
// before (duet's nodes keep refused hashes in the cache): the node's
// check_tx, which ignores the cache, tells which.
func (s *Submitter) Submit(ctx context.Context, tx []byte) error {
	if len(tx) > protocol.MaxBatchBytes {
		return &RejectedError{Code: uint32(protocol.CodeMalformed),
			Log: fmt.Sprintf("transaction of %d bytes exceeds %d (protocol.MaxBatchBytes)", len(tx), protocol.MaxBatchBytes)}
	}
	s.mu.Lock()
	start := s.next
	s.mu.Unlock()
	var errs []error
	for i := range s.clients {
		k := (start + i) % len(s.clients)
		err := attempt(ctx, s.clients[k], tx)
		var rej *RejectedError
		if errors.As(err, &rej) {
			return err
		}
		if err == nil {
			s.mu.Lock()
			s.next = k
			s.mu.Unlock()
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", s.urls[k], err))
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// attempt submits tx to one node, within AttemptTimeout.
func attempt(ctx context.Context, c *rpchttp.HTTP, tx []byte) error {
	ctx, cancel := context.WithTimeout(ctx, AttemptTimeout)
	defer cancel()
	res, err := c.BroadcastTxSync(ctx, tx)
	if rpcErrorIs(err, mempool.ErrTxInCache) {
		chk, err := c.CheckTx(ctx, tx)
		if err != nil {
			return err
		}
		if chk.Code != 0 {
			return &RejectedError{Code: chk.Code, Log: chk.Log}
		}
		return nil
	}
	if err != nil {
		return err
	}
	if res.Code != 0 {
		return &RejectedError{Code: res.Code, Log: res.Log}
	}
	return nil
}

// rpcErrorIs reports whether err is the JSON-RPC form of the node's error
// target: the server sends err.Error() as the error's data, which is all
// the structure that crosses the wire.
func rpcErrorIs(err, target error) bool {
	var e *rpctypes.RPCError
	return errors.As(err, &e) && e.Data == target.Error()
}

// Check runs the application's CheckTx on tx in this node, without adding
// it to the mempool and whatever the mempool's cache holds.
func (n *Node) Check(ctx context.Context, tx []byte) (*abci.ResponseCheckTx, error) {
	return n.CometBFT.ProxyApp().Mempool().CheckTx(ctx, &abci.RequestCheckTx{Tx: tx, Type: abci.CheckTxType_New})
}

// SubmitLocal puts tx into this node's own mempool (CheckTx in process),
// from where CometBFT gossips it to the validators over p2p: no RPC round
// trip, no JSON. A tx the mempool's cache already holds is pending or was
// refused before; the application's CheckTx, which ignores the cache,
// tells which. It fails while the node is still catching up; callers then
// fall back to a Submitter.
func (n *Node) SubmitLocal(ctx context.Context, tx []byte) error {
	if n.CometBFT.ConsensusReactor().WaitSync() {
		return errors.New("chain: node is catching up")
	}
	res := make(chan *abci.ResponseCheckTx, 1)
	err := n.CometBFT.Mempool().CheckTx(tx, func(r *abci.ResponseCheckTx) { res <- r }, mempool.TxInfo{})
	if errors.Is(err, mempool.ErrTxInCache) {
		r, err := n.Check(ctx, tx)
		if err != nil {
			return fmt.Errorf("chain: check a cached tx: %w", err)
		}
		if r.Code != 0 {
			return &RejectedError{Code: r.Code, Log: r.Log}
		}
		return nil
	}
	if tooLarge, ok := errors.AsType[mempool.ErrTxTooLarge](err); ok {
		// Permanent: no node of the network takes it either.
		return &RejectedError{Code: uint32(protocol.CodeMalformed), Log: tooLarge.Error()}
	}
	if err != nil {
		return fmt.Errorf("chain: local mempool: %w", err)
	}
	select {
	case r := <-res:
		if r.Code != 0 {
			return &RejectedError{Code: r.Code, Log: r.Log}
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
