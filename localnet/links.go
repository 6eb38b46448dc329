package localnet

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	cmtcfg "github.com/cometbft/cometbft/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/duet-bft/duet/chain"
	"github.com/duet-bft/duet/l2"
)

// Latency emulates distance between the nodes of a network on one machine:
// every directed link to a validator (its p2p port, and an L2 node's RPC
// connection to it) goes through a proxy in the supervising process
// (toxiproxy, as a library; the kernel's netem is not needed) that delays
// each direction by half the round trip.
type Latency struct {
	Validators time.Duration // round trip between two validators
	L2         time.Duration // round trip between an L2 node and each validator
}

func (l Latency) zero() bool { return l.Validators <= 0 && l.L2 <= 0 }

// wire writes every node's peers (and each L2 node's validators' RPC) for
// lat: direct links for zero latency, or links through proxies it starts.
// It returns a function that stops the proxies. A network generated
// before nodes recorded their node ids is left as it is.
func wire(n *Network, lat Latency) (stop func(), err error) {
	var proxies []*toxiproxy.Proxy
	stop = func() {
		for _, p := range proxies {
			p.Stop()
		}
	}
	for _, v := range n.Validators {
		if v.NodeID == "" || v.P2P == "" {
			return stop, nil
		}
	}
	var srv *toxiproxy.ApiServer
	if !lat.zero() {
		srv = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	}
	link := func(from, to, addr string, rtt time.Duration) (string, error) {
		if srv == nil || rtt <= 0 {
			return addr, nil
		}
		p := toxiproxy.NewProxy(srv, from+"->"+to+" "+addr, "127.0.0.1:0", addr)
		if err := p.Start(); err != nil {
			return "", err
		}
		proxies = append(proxies, p)
		for _, stream := range []string{"upstream", "downstream"} {
			js := fmt.Sprintf(`{"name":%q,"type":"latency","stream":%q,"attributes":{"latency":%d}}`, stream, stream, (rtt / 2).Milliseconds())
			if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
				return "", err
			}
		}
		return p.Listen, nil
	}
	for _, nodes := range [][]Node{n.Validators, n.L2} {
		for j, node := range nodes {
			rtt := lat.Validators
			if node.HTTP != "" {
				rtt = lat.L2
			}
			var peers, rpcs []string
			for _, v := range n.Validators {
				if v.ID == node.ID {
					continue
				}
				addr, err := link(node.ID, v.ID, v.P2P, rtt)
				if err != nil {
					return stop, err
				}
				peers = append(peers, v.NodeID+"@"+addr)
				if node.HTTP != "" {
					u, err := url.Parse(v.RPC)
					if err != nil {
						return stop, err
					}
					if u.Host, err = link(node.ID, v.ID, u.Host, rtt); err != nil {
						return stop, err
					}
					rpcs = append(rpcs, u.String())
				}
			}
			conf, err := chain.LoadConfig(node.Home)
			if err != nil {
				return stop, err
			}
			conf.P2P.PersistentPeers = strings.Join(peers, ",")
			cmtcfg.WriteConfigFile(filepath.Join(node.Home, "config", "config.toml"), conf)
			if node.HTTP == "" {
				continue
			}
			path := filepath.Join(node.Home, "config", l2.ConfigFile)
			fc, err := l2.LoadFileConfig(path)
			if err != nil {
				return stop, err
			}
			k := j % len(rpcs) // each L2 node starts with a different validator
			fc.L1RPC = append(rpcs[k:], rpcs[:k]...)
			if err := fc.Write(path); err != nil {
				return stop, err
			}
		}
	}
	return stop, nil
}
