package chain

import (
	"fmt"
	"os"
	"slices"
	"strings"

	cmtcfg "github.com/cometbft/cometbft/config"
	"github.com/spf13/viper"
)

// Overrides set a node's settings over its files, by key: config.toml's
// keys as CometBFT names them ("p2p.persistent_peers", "rpc.laddr",
// "consensus.timeout_propose"), and l2.json's prefixed with "l2."
// ("l2.batch_interval"). (CometBFT's log level is duet node's --log-level.)
// duet node takes them from DUET_* environment variables (the key in
// upper case, "." and "-" as "_": DUET_P2P_PERSISTENT_PEERS) and then from
// --set KEY=VALUE flags, each later source winning.
type Overrides map[string]string

// L2Prefix starts the keys of l2.json's fields.
const L2Prefix = "l2."

// EnvName is the environment variable that sets key.
func EnvName(key string) string {
	return "DUET_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// FromEnv returns the overrides that environment variables set for keys.
// Only known keys are read: other DUET_* variables are not settings.
func FromEnv(keys []string) Overrides {
	o := Overrides{}
	for _, k := range keys {
		if v, ok := os.LookupEnv(EnvName(k)); ok {
			o[k] = v
		}
	}
	return o
}

// NotSettings are DUET_* variables that are not settings (profiling).
var NotSettings = []string{"DUET_CPUPROFILE_DIR", "DUET_L2_PPROF", "DUET_SCREENSHOTS"}

// UnknownEnv lists the DUET_* environment variables that name none of
// keys (a mistyped setting, which would otherwise be ignored unseen).
func UnknownEnv(keys []string) []string {
	known := map[string]bool{}
	for _, k := range keys {
		known[EnvName(k)] = true
	}
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "DUET_") && !known[name] && !slices.Contains(NotSettings, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// ConfigKeys are config.toml's keys, as home's file holds them.
func ConfigKeys(home string) ([]string, error) {
	v := viper.New()
	v.SetConfigFile(configFile(home))
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("chain: read config: %w", err)
	}
	keys := v.AllKeys()
	slices.Sort(keys)
	return keys, nil
}

// LoadConfigWith reads home/config/config.toml the way CometBFT does, with
// the overrides of its keys (those without the l2. prefix) applied over
// it. An override of a key the file does not have is an error that names
// it; a value of the wrong kind fails as CometBFT's own validation does.
func LoadConfigWith(home string, o Overrides) (*cmtcfg.Config, error) {
	v := viper.New()
	v.SetConfigFile(configFile(home))
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("chain: read config: %w", err)
	}
	known := v.AllKeys()
	for k, val := range o {
		if strings.HasPrefix(k, L2Prefix) {
			continue
		}
		if !slices.Contains(known, k) {
			return nil, fmt.Errorf("chain: setting %q=%q: config.toml has no key %q", k, val, k)
		}
		v.Set(k, val)
	}
	conf := cmtcfg.DefaultConfig()
	if err := v.Unmarshal(conf); err != nil {
		return nil, fmt.Errorf("chain: parse config: %w", err)
	}
	conf.SetRoot(home)
	if err := conf.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("chain: invalid config: %w", err)
	}
	return conf, nil
}

func configFile(home string) string { return home + "/config/config.toml" }
