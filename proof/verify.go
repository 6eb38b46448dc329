package proof

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/crypto/merkle"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"
	ics23 "github.com/cosmos/ics23/go"

	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// Trust is what a verifier trusts: the chain id and the hash of the
// validator set of the chain's genesis.
type Trust struct {
	ChainID        string
	ValidatorsHash []byte
}

// TrustGenesis returns the trust a genesis document gives.
func TrustGenesis(genesisJSON []byte) (Trust, error) {
	doc, err := types.GenesisDocFromJSON(genesisJSON)
	if err != nil {
		return Trust{}, fmt.Errorf("genesis: %w", err)
	}
	return TrustDoc(doc)
}

// TrustDoc returns the trust a parsed genesis document gives.
func TrustDoc(doc *types.GenesisDoc) (Trust, error) {
	vals := make([]*types.Validator, len(doc.Validators))
	for i, v := range doc.Validators {
		vals[i] = types.NewValidator(v.PubKey, v.Power)
	}
	set, err := types.ValidatorSetFromExistingValidators(vals)
	if err != nil {
		return Trust{}, fmt.Errorf("genesis validators: %w", err)
	}
	return Trust{ChainID: doc.ChainID, ValidatorsHash: set.Hash()}, nil
}

// Report is what a valid proof shows.
type Report struct {
	Valid     bool     `json:"valid"`
	ProofHash string   `json:"proof_hash,omitempty"` // sha256 of the document, hex
	ChainID   string   `json:"chain_id"`
	Session   string   `json:"session"`
	Actor     string   `json:"actor"`
	Node      string   `json:"node"`
	Height    int64    `json:"height"`
	Time      string   `json:"time,omitempty"` // block time of Height, RFC 3339
	Outcome   string   `json:"outcome"`
	Results   string   `json:"results"`
	Ops       int      `json:"ops"`
	Answers   bool     `json:"answers"` // the ops' answers were given and match their hashes
	Receipts  int      `json:"receipts"`
	Signed    string   `json:"signed"` // voting power that signed the light block, of the total
	Writes    []string `json:"writes,omitempty"`
	// Evidence is L1's record against the node, for RESULT_MISMATCH.
	Evidence *Evidence `json:"evidence,omitempty"`
	Checks   []string  `json:"checks"` // every check that passed, in order
	// Failed names the first check that failed, and Error says why.
	Failed string `json:"failed,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Evidence is the ledger's record of a result L1's re-execution
// contradicted.
type Evidence = service.Evidence

// Summary is the report in one line.
func (r *Report) Summary() string {
	if !r.Valid {
		return fmt.Sprintf("INVALID: %s: %s", r.Failed, r.Error)
	}
	if r.Outcome == Absent {
		return fmt.Sprintf("valid: L1 had not committed session %s of %s as of height %d of %s (%s; signed by %s of the voting power), %d checks",
			r.Session, r.Actor, r.Height, r.ChainID, r.Time, r.Signed, len(r.Checks))
	}
	return fmt.Sprintf("valid: session %s of %s, %d ops via %s, %s at height %d of %s (signed by %s of the voting power), %d checks",
		r.Session, r.Actor, r.Ops, r.Node, r.Outcome, r.Height, r.ChainID, r.Signed, len(r.Checks))
}

// CheckError is a failed check.
type CheckError struct {
	Check string
	Err   error
}

func (e *CheckError) Error() string { return e.Check + ": " + e.Err.Error() }
func (e *CheckError) Unwrap() error { return e.Err }

// Decode parses a proof document strictly: unknown fields and trailing
// data are refused.
func Decode(raw []byte) (*Proof, error) {
	if len(raw) > MaxProofBytes {
		return nil, fmt.Errorf("proof of %d bytes, over the limit of %d", len(raw), MaxProofBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var p Proof
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the proof")
	}
	if p.Format != Format {
		return nil, fmt.Errorf("format %q, want %q", p.Format, Format)
	}
	// One encoding per proof: every byte of the document is checked, and
	// its hash names its content.
	if back, err := Encode(&p); err != nil || !bytes.Equal(back, raw) {
		return nil, errors.New("not in canonical form (the JSON that Encode gives, indented by one space, with a final newline)")
	}
	return &p, nil
}

// Encode returns a proof's canonical document: indented by one space, with
// a final newline, and no null: an empty list or byte string is [] or "".
func Encode(p *Proof) ([]byte, error) {
	q := *p
	normalize(reflect.ValueOf(&q).Elem())
	b, err := json.MarshalIndent(&q, "", " ")
	return append(b, '\n'), err
}

// normalize replaces every nil slice under v (a struct, settable) by an
// empty one, except in fields that omitempty leaves out either way. It
// copies slices before it changes them, so the caller's value is left as
// it was.
func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Type.Kind() == reflect.Slice && strings.Contains(f.Tag.Get("json"), ",omitempty") {
				if v.Field(i).Len() == 0 {
					continue
				}
			}
			normalize(v.Field(i))
		}
	case reflect.Slice:
		if v.IsNil() {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return
		}
		if k := v.Type().Elem().Kind(); k == reflect.Struct || k == reflect.Slice {
			c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			reflect.Copy(c, v)
			for i := range c.Len() {
				normalize(c.Index(i))
			}
			v.Set(c)
		}
	}
}

// Hash is a proof document's hash, as certificates name it.
func Hash(raw []byte) string {
	h := sha256.Sum256(raw)
	return hex.EncodeToString(h[:])
}

// Verify decodes and checks a proof document against trust. The report
// says what was checked; on failure it names the first check that failed
// (and the error is a *CheckError).
func Verify(trust Trust, raw []byte) (*Report, error) {
	_, r, err := verify(trust, raw)
	return r, err
}

// verify is Verify, returning the verifier (its proven keys and verdict)
// for VerifyReceipt.
func verify(trust Trust, raw []byte) (v *verifier, rep *Report, err error) {
	r := &Report{ProofHash: Hash(raw)}
	defer recoverCheck(r, &rep, &err)
	p, err := Decode(raw)
	if err != nil {
		rep, err = r.fail(&CheckError{"format", err})
		return nil, rep, err
	}
	r.Checks = append(r.Checks, "format")
	v = &verifier{trust: trust, p: p, r: r}
	if err := v.run(); err != nil {
		rep, err = r.fail(err)
		return nil, rep, err
	}
	r.Valid = true
	return v, r, nil
}

// recoverCheck turns a panic in a check (a library meeting input it did not
// expect) into that check's failure: no input may crash a verifier.
func recoverCheck(r *Report, rep **Report, err *error) {
	if x := recover(); x != nil {
		check := "proof"
		if n := len(r.Checks); n > 0 {
			check = "after " + r.Checks[n-1]
		}
		*rep, *err = r.fail(&CheckError{check, fmt.Errorf("the verifier met input it cannot handle: %v", x)})
	}
}

func (r *Report) fail(err error) (*Report, error) {
	var ce *CheckError
	if !errors.As(err, &ce) {
		ce = &CheckError{"proof", err}
	}
	r.Valid, r.Failed, r.Error = false, ce.Check, ce.Err.Error()
	return r, ce
}

type verifier struct {
	trust Trust
	p     *Proof
	r     *Report

	header    types.Header       // block Height
	next      types.SignedHeader // block Height+1
	bundle    *protocol.Bundle
	outcome   protocol.Outcome
	actorKey  []byte
	nodeKey   []byte
	opHashes  []protocol.Hash
	txHash    string
	resultSet []protocol.Hash
}

func (v *verifier) check(name string, f func() error) error {
	if err := f(); err != nil {
		return &CheckError{name, err}
	}
	v.r.Checks = append(v.r.Checks, name)
	return nil
}

func (v *verifier) run() error {
	p, r := v.p, v.r
	r.ChainID, r.Session, r.Actor, r.Node, r.Height = p.ChainID, p.Session, p.Actor, p.Node, p.Height
	r.Outcome, r.Results, r.Ops = p.Outcome.Code, p.Outcome.Results.String(), len(p.Ops)
	type step struct {
		name string
		f    func() error
	}
	steps := []step{
		{"chain_id", v.chainID},
		{"light_block", v.lightBlock},
		{"header", v.headerH},
		{"tx_inclusion", v.txInclusion},
		{"verdict", v.verdict},
		{"state_before", v.stateBefore},
		{"node_signature", v.nodeSignature},
		{"ops", v.ops},
		{"results", v.results},
		{"state_after", v.stateAfter},
		{"receipts", v.receipts},
	}
	if p.Outcome.Code == Absent {
		steps = append(steps[:3:3], step{"state_before", v.stateBefore}, step{"absence", v.absence})
	}
	for _, s := range steps {
		if err := v.check(s.name, s.f); err != nil {
			return err
		}
	}
	return nil
}

func (v *verifier) chainID() error {
	if v.p.ChainID != v.trust.ChainID {
		return fmt.Errorf("the proof is of chain %q; the genesis is of %q", v.p.ChainID, v.trust.ChainID)
	}
	if v.p.Height < 1 || v.p.Height == math.MaxInt64 {
		return fmt.Errorf("height %d", v.p.Height)
	}
	return nil
}

// lightBlock checks LightBlock: a valid light block of height Height+1
// (LightBlock.ValidateBasic) whose validator set is the trusted one, or is
// reached from it through ValidatorHistory (each entry verified from the
// one before with the light client's rules, light.Verify), and whose
// commit more than 2/3 of that set signed. Every light block's every
// signature is checked (VerifyCommitLightAllSignatures), so none is
// carried unchecked.
func (v *verifier) lightBlock() error {
	chain := append(append([]LightBlock(nil), v.p.ValidatorHistory...), v.p.LightBlock)
	var prev, lb *types.LightBlock
	for i, l := range chain {
		where := "the light block"
		if i < len(chain)-1 {
			where = fmt.Sprintf("validator history %d", i)
		}
		cur, err := v.decodeLight(l)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if prev == nil {
			if !bytes.Equal(cur.ValidatorSet.Hash(), v.trust.ValidatorsHash) {
				if len(chain) == 1 {
					return fmt.Errorf("its validator set %X is not the genesis set %X, and the proof carries no validator history",
						cur.ValidatorSet.Hash(), v.trust.ValidatorsHash)
				}
				return fmt.Errorf("%s: its set %X is not the genesis set %X", where, cur.ValidatorSet.Hash(), v.trust.ValidatorsHash)
			}
		} else if err := verifyLight(prev, cur); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if err := types.VerifyCommitLightAllSignatures(v.trust.ChainID, cur.ValidatorSet, cur.Commit.BlockID, cur.Height, cur.Commit); err != nil {
			return fmt.Errorf("%s: commit: %w", where, err)
		}
		prev, lb = cur, cur
	}
	if lb.Height != v.p.Height+1 {
		return fmt.Errorf("light block at height %d, want %d", lb.Height, v.p.Height+1)
	}
	v.next = *lb.SignedHeader
	var power int64
	for i, s := range lb.Commit.Signatures {
		if s.BlockIDFlag == types.BlockIDFlagCommit {
			power += lb.ValidatorSet.Validators[i].VotingPower
		}
	}
	v.r.Signed = fmt.Sprintf("%d/%d", power, lb.ValidatorSet.TotalVotingPower())
	return nil
}

// verifyLight verifies cur from the trusted prev with the light client's
// rules. Offline there is no clock: "now" is cur's own time (with a second
// of drift, so cur is not "from the future"), and trust in the genesis set
// does not expire (a trusting period of a century).
func verifyLight(prev, cur *types.LightBlock) error {
	if cur.Height <= prev.Height {
		return fmt.Errorf("height %d after %d", cur.Height, prev.Height)
	}
	if err := cur.ValidateBasic(prev.ChainID); err != nil {
		return err
	}
	const century = 100 * 365 * 24 * time.Hour
	return lightVerify(prev.SignedHeader, prev.ValidatorSet, cur.SignedHeader, cur.ValidatorSet, century, cur.Time, time.Second, lightTrustLevel)
}

func (v *verifier) decodeLight(l LightBlock) (*types.LightBlock, error) {
	var psh cmtproto.SignedHeader
	if err := canonical(l.SignedHeader, &psh); err != nil {
		return nil, fmt.Errorf("signed header: %w", err)
	}
	sh, err := types.SignedHeaderFromProto(&psh)
	if err != nil {
		return nil, fmt.Errorf("signed header: %w", err)
	}
	if len(l.Validators) == 0 {
		return nil, errors.New("no validators")
	}
	vals := make([]*types.Validator, len(l.Validators))
	for i, val := range l.Validators {
		if len(val.PubKey) != ed25519.PubKeySize {
			return nil, fmt.Errorf("validator %d: public key of %d bytes", i, len(val.PubKey))
		}
		vals[i] = types.NewValidator(ed25519.PubKey(val.PubKey), val.Power)
	}
	set, err := types.ValidatorSetFromExistingValidators(vals)
	if err != nil {
		return nil, fmt.Errorf("validators: %w", err)
	}
	for i, val := range set.Validators { // canonical order: nothing in the list goes unchecked
		if !bytes.Equal(val.PubKey.Bytes(), l.Validators[i].PubKey) {
			return nil, fmt.Errorf("validators are not in the set's canonical order (by power, then address) at %d", i)
		}
	}
	lb := &types.LightBlock{SignedHeader: sh, ValidatorSet: set}
	if err := lb.ValidateBasic(v.trust.ChainID); err != nil {
		return nil, err
	}
	for i, s := range sh.Commit.Signatures {
		if s.BlockIDFlag != types.BlockIDFlagCommit && s.BlockIDFlag != types.BlockIDFlagAbsent {
			return nil, fmt.Errorf("commit signature %d is a vote for nil: a proof carries only the votes for the block, each checked", i)
		}
	}
	return lb, nil
}

// canonical decodes a protobuf message and requires that it encodes back to
// the same bytes, so no byte of it goes unchecked.
func canonical(raw []byte, m interface {
	Unmarshal([]byte) error
	Marshal() ([]byte, error)
}) error {
	if err := m.Unmarshal(raw); err != nil {
		return err
	}
	back, err := m.Marshal()
	if err != nil {
		return err
	}
	if !bytes.Equal(back, raw) {
		return errors.New("not in canonical protobuf encoding")
	}
	return nil
}

// headerH checks header Height: a valid header (in light.VerifyBackwards)
// that is the one LightBlock's LastBlockID names.
func (v *verifier) headerH() error {
	var ph cmtproto.Header
	if err := canonical(v.p.Block.Header, &ph); err != nil {
		return err
	}
	h, err := types.HeaderFromProto(&ph)
	if err != nil {
		return err
	}
	if h.Height != v.p.Height {
		return fmt.Errorf("header at height %d, want %d", h.Height, v.p.Height)
	}
	if err := lightVerifyBackwards(&h, v.next.Header); err != nil {
		return err
	}
	v.header = h
	v.r.Time = h.Time.UTC().Format(time.RFC3339Nano)
	return nil
}

func (v *verifier) txInclusion() error {
	b := v.p.Block
	tp := types.TxProof{RootHash: v.header.DataHash, Data: b.Tx,
		Proof: merkle.Proof{Total: b.TxProof.Total, Index: b.TxProof.Index, LeafHash: b.TxProof.LeafHash, Aunts: b.TxProof.Aunts}}
	if err := tp.Validate(v.header.DataHash); err != nil {
		return err
	}
	sum := sha256.Sum256(b.Tx)
	v.txHash = strings.ToUpper(hex.EncodeToString(sum[:]))
	batch, err := protocol.DecodeBatch(b.Tx)
	if err != nil {
		return err
	}
	if b.Bundle < 0 || b.Bundle >= len(batch.Bundles) {
		return fmt.Errorf("bundle %d of a batch of %d", b.Bundle, len(batch.Bundles))
	}
	bd := &batch.Bundles[b.Bundle]
	if bd.Session != v.p.Session || bd.Actor != v.p.Actor || bd.Node != v.p.Node {
		return fmt.Errorf("bundle %d is session %s of %s via %s, not %s of %s via %s", b.Bundle,
			bd.Session, bd.Actor, bd.Node, v.p.Session, v.p.Actor, v.p.Node)
	}
	v.bundle = bd
	return nil
}

// verdict checks the transaction's result against LightBlock's
// LastResultsHash and reads the verdict on the bundle from it.
func (v *verifier) verdict() error {
	b := v.p.Block
	if b.ResultProof.Index != b.TxProof.Index || b.ResultProof.Total != b.TxProof.Total {
		return fmt.Errorf("result %d of %d, but transaction %d of %d", b.ResultProof.Index, b.ResultProof.Total, b.TxProof.Index, b.TxProof.Total)
	}
	res := abci.ExecTxResult{Code: b.Result.Code, Data: b.Result.Data, GasWanted: b.Result.GasWanted, GasUsed: b.Result.GasUsed}
	leaf, err := res.Marshal()
	if err != nil {
		return err
	}
	rp := merkle.Proof{Total: b.ResultProof.Total, Index: b.ResultProof.Index, LeafHash: b.ResultProof.LeafHash, Aunts: b.ResultProof.Aunts}
	if err := rp.Verify(v.next.LastResultsHash, leaf); err != nil {
		return fmt.Errorf("result against LastResultsHash: %w", err)
	}
	if b.Result.Code != 0 {
		return fmt.Errorf("the transaction failed with code %d", b.Result.Code)
	}
	outs, err := protocol.DecodeOutcomes(b.Result.Data)
	if err != nil {
		return err
	}
	if len(outs) <= b.Bundle {
		return fmt.Errorf("%d outcomes for bundle %d", len(outs), b.Bundle)
	}
	o := outs[b.Bundle]
	if o.Session != v.p.Session {
		return fmt.Errorf("outcome %d is of session %s", b.Bundle, o.Session)
	}
	if o.Code.String() != v.p.Outcome.Code || o.Results != v.p.Outcome.Results {
		return fmt.Errorf("L1 decided %s (results %s), the proof says %s (results %s)", o.Code, o.Results, v.p.Outcome.Code, v.p.Outcome.Results)
	}
	v.outcome = o
	return nil
}

// stateBefore checks the actor's and the node's records, in the state
// after Height-1 (header Height's AppHash): their keys sign the ops and
// the bundle.
func (v *verifier) stateBefore() error {
	keys := []string{service.ActorKey(v.p.Actor), service.ActorKey(v.p.Node)}
	if len(v.p.StateBefore) != len(keys) {
		return fmt.Errorf("%d entries, want the actor's and the node's records", len(v.p.StateBefore))
	}
	for i, k := range keys {
		val, _, err := v.prove(v.p.StateBefore[i], k, v.header.AppHash)
		if err != nil {
			return err
		}
		var a service.Actor
		if err := strictJSON(val, &a); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if len(a.PublicKey) != ed25519.PubKeySize {
			return fmt.Errorf("%s: no Ed25519 public key", k)
		}
		if i == 0 {
			v.actorKey = a.PublicKey
		} else {
			if a.Role != service.RoleL2 {
				return fmt.Errorf("%s has role %q, not %q", k, a.Role, service.RoleL2)
			}
			v.nodeKey = a.PublicKey
		}
	}
	return nil
}

// prove checks one state entry: its key, and its ics23 proof against root.
// It returns the value and the version it was written at.
func (v *verifier) prove(s State, key string, root []byte) ([]byte, uint64, error) {
	if s.Key != key {
		return nil, 0, fmt.Errorf("entry for %q, want %q", s.Key, key)
	}
	var cp ics23.CommitmentProof
	if err := canonical(s.Proof, &cp); err != nil {
		return nil, 0, fmt.Errorf("%s: proof: %w", key, err)
	}
	if cp.GetExist() == nil { // one existence proof: nothing else rides along (nor reaches ics23's decompression)
		return nil, 0, fmt.Errorf("%s: not a single existence proof", key)
	}
	if len(s.Stored) == 0 {
		return nil, 0, fmt.Errorf("%s: no value", key)
	}
	if !ics23.VerifyMembership(ics23.IavlSpec, root, &cp, []byte(key), s.Stored) {
		return nil, 0, fmt.Errorf("%s: the ics23 proof does not verify against app hash %X", key, root)
	}
	ver, n := binary.Uvarint(s.Stored)
	if n <= 0 {
		return nil, 0, fmt.Errorf("%s: stored value has no version", key)
	}
	return s.Stored[n:], ver, nil
}

func strictJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

func (v *verifier) nodeSignature() error {
	if !protocol.Verify(v.nodeKey, v.bundle.SigningBytes(), v.bundle.Signature) {
		return fmt.Errorf("node %s's signature of the bundle does not verify", v.p.Node)
	}
	return nil
}

// ops checks every listed op against the bundle: the same fields, the
// signed bytes, the actor's signature, the op chain and, when the answer
// is given, its hash.
func (v *verifier) ops() error {
	if len(v.p.Ops) != len(v.bundle.Ops) {
		return fmt.Errorf("%d ops listed, the bundle holds %d", len(v.p.Ops), len(v.bundle.Ops))
	}
	answers := 0
	for c := range v.bundle.Chain() {
		o, bo := &v.p.Ops[c.Seq], c.Op
		switch {
		case o.Seq != uint64(c.Seq):
			return fmt.Errorf("op %d: listed with seq %d", c.Seq, o.Seq)
		case o.Method != bo.Method || o.Path != bo.Path || !bytes.Equal(o.Body, bo.Body) || o.Time != bo.Time || o.Expires != bo.Expires:
			return fmt.Errorf("op %d: differs from the bundle's", c.Seq)
		case !bytes.Equal(o.Signed, c.Signed):
			return fmt.Errorf("op %d: signed bytes differ from the op's", c.Seq)
		case !bytes.Equal(o.Signature, bo.Signature):
			return fmt.Errorf("op %d: signature differs from the bundle's", c.Seq)
		case o.Hash != c.Hash:
			return fmt.Errorf("op %d: hash %s, the op chain gives %s", c.Seq, o.Hash, c.Hash)
		case o.ResultHash != bo.Result:
			return fmt.Errorf("op %d: result hash %s, the bundle claims %s", c.Seq, o.ResultHash, bo.Result)
		case !protocol.Verify(v.actorKey, c.Signed, bo.Signature):
			return fmt.Errorf("op %d: %s's signature does not verify", c.Seq, v.p.Actor)
		}
		if o.Status != 0 || o.Result != nil {
			if protocol.ResultHash(o.Status, o.Result) != bo.Result {
				return fmt.Errorf("op %d: the answer (%d, %d bytes) does not hash to the result the bundle claims", c.Seq, o.Status, len(o.Result))
			}
			answers++
		}
		v.opHashes = append(v.opHashes, c.Hash)
		v.resultSet = append(v.resultSet, bo.Result)
	}
	if answers != 0 && answers != len(v.p.Ops) {
		return fmt.Errorf("answers for %d of %d ops: give all or none", answers, len(v.p.Ops))
	}
	v.r.Answers = answers > 0
	return nil
}

// results compares what the node claimed with what L1 computed: equal for
// a session L1 accepted, different for RESULT_MISMATCH.
func (v *verifier) results() error {
	claimed := protocol.ResultsDigest(v.resultSet)
	switch v.outcome.Code {
	case protocol.CodeOK:
		if claimed != v.outcome.Results {
			return fmt.Errorf("accepted, but the claimed results %s are not L1's %s", claimed, v.outcome.Results)
		}
	case protocol.CodeResultMismatch:
		if claimed == v.outcome.Results {
			return errors.New("RESULT_MISMATCH, but the claimed results are L1's")
		}
	}
	return nil
}

// stateAfter checks the state after Height against LightBlock's AppHash:
// for an accepted session its record and every key it wrote; for
// RESULT_MISMATCH the evidence against the node; nothing otherwise.
func (v *verifier) stateAfter() error {
	st, root := v.p.StateAfter, v.next.AppHash
	switch v.outcome.Code {
	case protocol.CodeOK:
		if len(st) == 0 {
			return errors.New("no session record")
		}
		val, ver, err := v.prove(st[0], service.SessionKey(v.p.Actor, v.p.Session), root)
		if err != nil {
			return err
		}
		var rec service.SessionRecord
		if err := strictJSON(val, &rec); err != nil {
			return fmt.Errorf("session record: %w", err)
		}
		last := v.opHashes[len(v.opHashes)-1].String()
		if ver != uint64(v.p.Height) || rec.Session != v.p.Session || rec.Actor != v.p.Actor || rec.Node != v.p.Node ||
			rec.Height != v.p.Height || rec.TxHash != v.txHash || rec.Ops != len(v.p.Ops) || rec.LastOp != last ||
			rec.Results != v.outcome.Results.String() {
			return fmt.Errorf("the session record (%s at %d, tx %s, %d ops ending %s, results %s) is not this session's",
				rec.Session, rec.Height, rec.TxHash, rec.Ops, rec.LastOp, rec.Results)
		}
		if len(st)-1 != len(rec.Writes) {
			return fmt.Errorf("%d keys proven, the session wrote %d", len(st)-1, len(rec.Writes))
		}
		for i, k := range rec.Writes {
			if _, ver, err := v.prove(st[i+1], k, root); err != nil {
				return err
			} else if ver != uint64(v.p.Height) {
				return fmt.Errorf("%s: written at %d, not %d", k, ver, v.p.Height)
			}
		}
		v.r.Writes = rec.Writes
	case protocol.CodeResultMismatch:
		if len(st) != 1 {
			return fmt.Errorf("%d entries, want the evidence record", len(st))
		}
		val, ver, err := v.prove(st[0], service.EvidenceKey(v.p.Node, v.p.Actor, v.p.Session), root)
		if err != nil {
			return err
		}
		var ev Evidence
		if err := strictJSON(val, &ev); err != nil {
			return fmt.Errorf("evidence: %w", err)
		}
		if ev.Node != v.p.Node || ev.Actor != v.p.Actor || ev.Session != v.p.Session || ver > uint64(v.p.Height) ||
			ev.Seq < 0 || ev.Seq >= len(v.resultSet) || ev.Claimed != v.resultSet[ev.Seq].String() {
			return errors.New("the evidence record is not about this bundle")
		}
		v.r.Evidence = &ev
	default:
		if len(st) != 0 {
			return fmt.Errorf("L1 rejected the session (%s): no state to prove, %d entries given", v.outcome.Code, len(st))
		}
	}
	return nil
}

// absence checks a proof of absence: nothing but the header, the light
// block, the two keys and a non-membership proof of the session's record
// against the state after Height.
func (v *verifier) absence() error {
	p, b := v.p, v.p.Block
	empty := func(m MerkleProof) bool {
		return m.Total == 0 && m.Index == 0 && len(m.LeafHash) == 0 && len(m.Aunts) == 0
	}
	if p.Outcome.Results != protocol.ZeroHash || len(p.Ops) != 0 || len(p.Receipts) != 0 || len(b.Tx) != 0 || b.Bundle != 0 ||
		!empty(b.TxProof) || !empty(b.ResultProof) || b.Result.Code != 0 || len(b.Result.Data) != 0 || b.Result.GasWanted != 0 || b.Result.GasUsed != 0 {
		return errors.New("a proof of absence carries no results, ops, receipts or transaction")
	}
	key := service.SessionKey(p.Actor, p.Session)
	if len(p.StateAfter) != 1 || p.StateAfter[0].Key != key || len(p.StateAfter[0].Stored) != 0 {
		return fmt.Errorf("want one entry: the absence of %s", key)
	}
	var cp ics23.CommitmentProof
	if err := canonical(p.StateAfter[0].Proof, &cp); err != nil {
		return fmt.Errorf("%s: proof: %w", key, err)
	}
	if cp.GetNonexist() == nil {
		return fmt.Errorf("%s: not a single non-existence proof", key)
	}
	if !ics23.VerifyNonMembership(ics23.IavlSpec, ics23.CommitmentRoot(v.next.AppHash), &cp, []byte(key)) {
		return fmt.Errorf("%s: the ics23 non-membership proof does not verify against app hash %X", key, v.next.AppHash)
	}
	return nil
}

// receipts checks the executing node's receipts: one per op, in order,
// each naming the op and its result, signed by the node.
func (v *verifier) receipts() error {
	rs := v.p.Receipts
	if len(rs) != 0 && len(rs) != len(v.p.Ops) {
		return fmt.Errorf("%d receipts for %d ops: give all or none", len(rs), len(v.p.Ops))
	}
	for i := range rs {
		rc, o := &rs[i], &v.p.Ops[i]
		kind := service.Classify(v.p.Session, o.Seq, o.Method, o.Path).String()
		if rc.Node != v.p.Node || rc.Actor != v.p.Actor || rc.Session != v.p.Session || rc.Seq != uint64(i) || rc.Kind != kind ||
			rc.Op != o.Hash || rc.Result != o.ResultHash || rc.Time != o.Time || rc.Expires != o.Expires {
			return fmt.Errorf("receipt %d is not op %d's", i, i)
		}
		if !rc.Verify(v.nodeKey, rc.Signature) {
			return fmt.Errorf("receipt %d: node %s's signature does not verify", i, v.p.Node)
		}
	}
	v.r.Receipts = len(rs)
	return nil
}
