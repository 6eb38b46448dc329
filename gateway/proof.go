package gateway

import (
	"errors"
	"net/http"
	"strings"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/duet-bft/duet/proof"
	"github.com/duet-bft/duet/protocol"
)

// proof serves GET /v1/sessions/{id}/proof?actor=A[&canonical=1][&absent=1[&node=N]].
func (h *handler) proof(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := proof.Request{Session: r.PathValue("id"), Actor: q.Get("actor"), Node: q.Get("node")}
	if !protocol.ValidID(req.Session) || !protocol.ValidID(req.Actor) {
		writeError(w, http.StatusBadRequest, "MALFORMED", "name the session by its id and its actor: /v1/sessions/{id}/proof?actor=ID")
		return
	}
	if req.Node != "" && !protocol.ValidID(req.Node) {
		writeError(w, http.StatusBadRequest, "MALFORMED", "node must be an actor id")
		return
	}
	for _, f := range []struct {
		name string
		v    *bool
	}{{"canonical", &req.Canonical}, {"absent", &req.Absent}} {
		switch q.Get(f.name) {
		case "", "0", "false":
		case "1", "true":
			*f.v = true
		default:
			writeError(w, http.StatusBadRequest, "MALFORMED", f.name+" must be 1 or 0")
			return
		}
	}
	raw, ok := h.buildProof(w, r, req)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Duet-Proof-Hash", proof.Hash(raw))
	w.Write(raw)
}

func (h *handler) buildProof(w http.ResponseWriter, r *http.Request, req proof.Request) ([]byte, bool) {
	if h.cfg.Prover == nil {
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "this node builds no proofs")
		return nil, false
	}
	raw, err := h.cfg.Prover.Proof(r.Context(), req)
	id, actor := req.Session, req.Actor
	switch {
	case err == nil:
		return raw, true
	case errors.Is(err, proof.ErrNotFound) && req.Absent:
		writeError(w, http.StatusNotFound, "NOT_FOUND", strings.TrimPrefix(err.Error(), "proof: "))
	case errors.Is(err, proof.ErrNotFound):
		writeError(w, http.StatusNotFound, "NOT_FOUND", "no session "+id+" of "+actor+" that L1 judged, as this node knows; add absent=1 for a proof that L1 has not committed it")
	case errors.Is(err, proof.ErrUnprovable):
		writeError(w, http.StatusConflict, "UNPROVABLE", strings.TrimPrefix(err.Error(), "proof: "))
	case errors.Is(err, proof.ErrNotFinal):
		writeError(w, http.StatusConflict, "NOT_FINAL", "session "+id+" is not final yet")
	case errors.Is(err, proof.ErrNotYet):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "NOT_YET", err.Error())
	default:
		h.log.Error("proof", "session", id, "actor", actor, "err", err)
		writeError(w, http.StatusInternalServerError, "INTERNAL", err.Error())
	}
	return nil, false
}

// certificate serves the app's certificate route: the completion
// certificate of the last committed session that wrote the object, as
// text, or as a QR code (?format=png).
func (h *handler) certificate(w http.ResponseWriter, r *http.Request) {
	c := h.cfg.App.Certificates
	id := r.PathValue("id")
	format := r.URL.Query().Get("format")
	if format != "" && format != "text" && format != "png" {
		writeError(w, http.StatusBadRequest, "MALFORMED", "format must be text or png")
		return
	}
	st, _ := h.cfg.Chain.Committed()
	key, actor, session, ok := c.Subject(st, id)
	if !ok {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "no committed session wrote "+id)
		return
	}
	raw, ok := h.buildProof(w, r, proof.Request{Actor: actor, Session: session, Canonical: true})
	if !ok {
		return
	}
	rep, err := proof.Verify(h.cfg.Trust, raw)
	if err == nil {
		var cert *proof.Certificate
		if cert, err = proof.CertificateOf(rep, key); err == nil {
			text := cert.Encode()
			if format == "png" {
				png, err := qrcode.Encode(string(text), qrcode.Medium, 320)
				if err != nil {
					writeError(w, http.StatusInternalServerError, "INTERNAL", err.Error())
					return
				}
				w.Header().Set("Content-Type", "image/png")
				w.Write(png)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write(text)
			return
		}
	}
	h.log.Error("certificate: own proof does not verify", "id", id, "err", err)
	writeError(w, http.StatusInternalServerError, "INTERNAL", "the proof does not verify: "+err.Error())
}
