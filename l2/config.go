package l2

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"time"

	"errors"
	"github.com/duet-bft/duet/buffer"
	"github.com/duet-bft/duet/chain"
	"github.com/duet-bft/duet/protocol"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// FileConfig is config/l2.json. A field left out (or zero) takes the
// buffer's default (buffer.Config.SetDefaults, the one place defaults are
// set); the defaults are listed here for the reader.
type FileConfig struct {
	Node          string   `json:"node"`                    // actor id of this L2 node
	HTTP          string   `json:"http"`                    // listen address, e.g. 127.0.0.1:8080
	L1RPC         []string `json:"l1_rpc"`                  // validators' RPC URLs to submit to, in order of preference
	BatchInterval Duration `json:"batch_interval,omitzero"` // default 10ms
	BatchMax      int      `json:"batch_max,omitempty"`     // default 256
	SessionTTL    Duration `json:"session_ttl,omitzero"`    // default 15m
	MaxLag        Duration `json:"max_lag,omitzero"`        // new sessions get 429 while a commit has waited this long for L1; default 2s

	// Limits of one session and quotas of one actor.
	MaxSessionBytes     int     `json:"max_session_bytes,omitempty"`      // default and most 1 MiB
	MaxOpenPerActor     int     `json:"max_open_per_actor,omitempty"`     // default 64
	MaxReservedPerActor int     `json:"max_reserved_per_actor,omitempty"` // default 4096
	MaxBytesPerActor    int     `json:"max_bytes_per_actor,omitempty"`    // default 64 MiB
	ActorRate           float64 `json:"actor_rate,omitempty"`             // signed ops per second per actor; default 200; negative: no limit
	ActorBurst          int     `json:"actor_burst,omitempty"`            // default 2*actor_rate

	MaxOpen       int      `json:"max_open,omitempty"`       // open sessions of the node; default 10000
	MaxQueue      int      `json:"max_queue,omitempty"`      // commits waiting for L1; default 20000
	MaxSessionAge Duration `json:"max_session_age,omitzero"` // an open session this old takes only an abort; default 12h
	MaxOpLifetime Duration `json:"max_op_lifetime,omitzero"` // how far ahead an op's expiry may be; default 24h
	RetainBytes   int      `json:"retain_bytes,omitempty"`   // answers of final sessions kept in memory; default 256 MiB

	// TLS of the HTTP gateway: a PEM certificate (a chain, leaf first) and
	// its PEM private key. A relative path is relative to the node's config
	// directory (HOME/config). Both set: the node serves HTTPS only, TLS 1.2
	// or later; neither: plain HTTP; one without the other is an error.
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
}

// Buffer returns the buffer settings of the file (Node and the limits);
// the caller adds the key, registry, WAL path and hooks.
func (fc FileConfig) Buffer() buffer.Config {
	return buffer.Config{Node: fc.Node, BatchInterval: time.Duration(fc.BatchInterval), BatchMax: fc.BatchMax,
		SessionTTL: time.Duration(fc.SessionTTL), MaxLag: time.Duration(fc.MaxLag), MaxSessionBytes: fc.MaxSessionBytes,
		MaxOpenPerActor: fc.MaxOpenPerActor, MaxReservedPerActor: fc.MaxReservedPerActor, MaxBytesPerActor: fc.MaxBytesPerActor,
		ActorRate: fc.ActorRate, ActorBurst: fc.ActorBurst, MaxOpen: fc.MaxOpen, MaxQueue: fc.MaxQueue,
		MaxSessionAge: time.Duration(fc.MaxSessionAge), MaxOpLifetime: time.Duration(fc.MaxOpLifetime), RetainBytes: fc.RetainBytes}
}

// LoadFileConfig reads an l2.json strictly: an unknown field, a value of
// the wrong type, a bad duration or anything after the object is an error
// that names it.
func LoadFileConfig(path string) (FileConfig, error) {
	var fc FileConfig
	if err := readStrict(path, &fc); err != nil {
		return FileConfig{}, err
	}
	if err := fc.Validate(); err != nil {
		return FileConfig{}, fmt.Errorf("l2: %s: %w", path, err)
	}
	return fc, nil
}

// Validate checks what the file says on its own (the limits are the
// buffer's to check), naming the field and the value: node, http and
// l1_rpc given and well formed, and TLS's cert and key both or neither.
func (fc FileConfig) Validate() error {
	if fc.Node == "" || fc.HTTP == "" || len(fc.L1RPC) == 0 {
		return errors.New("node, http and l1_rpc are required")
	}
	if !protocol.ValidID(fc.Node) {
		return fmt.Errorf("node %q is not an actor id", fc.Node)
	}
	_, port, err := net.SplitHostPort(fc.HTTP)
	if err != nil {
		return fmt.Errorf("http %q is not HOST:PORT", fc.HTTP)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("http %q: port %q is not a number in 0..65535", fc.HTTP, port)
	}
	for _, u := range fc.L1RPC {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https" && pu.Scheme != "tcp") || pu.Host == "" {
			return fmt.Errorf("l1_rpc %q is not an http(s)://HOST:PORT URL", u)
		}
	}
	if (fc.TLSCert == "") != (fc.TLSKey == "") {
		set, value, missing := "tls_cert", fc.TLSCert, "tls_key"
		if fc.TLSCert == "" {
			set, value, missing = "tls_key", fc.TLSKey, "tls_cert"
		}
		return fmt.Errorf("%s is %q but %s is missing: HTTPS takes both, plain HTTP neither", set, value, missing)
	}
	return nil
}

// readStrict decodes the JSON object in path into v, refusing unknown
// fields and trailing data.
func readStrict(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("l2: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("l2: %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("l2: %s: data after the JSON object", path)
	}
	return nil
}

// Duration is a time.Duration written in JSON as a Go duration string,
// such as "10ms" or "15m"; it must be positive.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON refuses anything but a positive duration, with an error
// the decoder completes with the field's name.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	v, err := time.Duration(0), json.Unmarshal(b, &s)
	if err == nil {
		v, err = time.ParseDuration(s)
	}
	if err != nil || v <= 0 {
		return &json.UnmarshalTypeError{Value: string(b) + " (want a positive Go duration such as \"10ms\" or \"15m\")", Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(v)
	return nil
}

// Write writes fc to path as indented JSON.
func (fc FileConfig) Write(path string) error {
	raw, err := json.MarshalIndent(fc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o600)
}

// With returns fc with the overrides of l2.json's keys ("l2.<field>", see
// chain.Overrides) applied. An unknown field, or a value that is not of
// the field's kind, is an error that names both.
func (fc FileConfig) With(o chain.Overrides) (FileConfig, error) {
	kinds := map[string]reflect.Type{}
	t := reflect.TypeFor[FileConfig]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		kinds[name] = t.Field(i).Type
	}
	raw, err := json.Marshal(fc)
	if err != nil {
		return fc, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return fc, err
	}
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field, ok := strings.CutPrefix(k, chain.L2Prefix)
		if !ok {
			continue
		}
		v := o[k]
		typ, known := kinds[field]
		if !known {
			return fc, fmt.Errorf("l2: setting %s=%q: l2.json has no field %q", k, v, field)
		}
		var val any = v
		switch {
		case typ == reflect.TypeFor[Duration]():
			// a Go duration string, as in the file
		case typ.Kind() == reflect.Slice:
			val = strings.Split(v, ",")
		case typ.Kind() == reflect.Int || typ.Kind() == reflect.Float64:
			val = json.Number(v)
		}
		if m[field], err = json.Marshal(val); err != nil {
			return fc, fmt.Errorf("l2: setting %s=%q: %w", k, v, err)
		}
	}
	raw, _ = json.Marshal(m)
	var out FileConfig
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return fc, fmt.Errorf("l2: settings over l2.json: %w", err)
	}
	if err := out.Validate(); err != nil {
		return fc, fmt.Errorf("l2: l2.json with the settings over it: %w", err)
	}
	return out, nil
}

// ConfigKeys are l2.json's keys, as overrides name them (l2.<field>).
func ConfigKeys() []string {
	var keys []string
	t := reflect.TypeFor[FileConfig]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		keys = append(keys, chain.L2Prefix+name)
	}
	return keys
}
