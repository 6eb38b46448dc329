package localnet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
)

// FreeBasePort finds a base port (see Spec.BasePort) whose p2p and RPC
// ports for n nodes, and the HTTP ports base+200.. for up to 16 L2 nodes,
// are free now. It picks below 32768, outside Linux's ephemeral port range,
// so outgoing connections cannot take the ports before the nodes bind them.
// Tests use it to run networks side by side.
func FreeBasePort(n int) (int, error) {
	for try := 0; try < 100; try++ {
		base := 20000 + 10*rand.IntN(1000)
		ports := []int{}
		for i := 0; i < n; i++ {
			ports = append(ports, base+10*i, base+10*i+1)
		}
		for j := 0; j < 16; j++ {
			ports = append(ports, base+200+j)
		}
		if base+10*n > base+200 {
			return 0, errors.New("localnet: FreeBasePort supports at most 20 nodes")
		}
		free := true
		for _, p := range ports {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return base, nil
		}
	}
	return 0, errors.New("localnet: no free port range")
}
