package supplychain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"

	"github.com/duet-bft/duet/service"
)

// courierCommand is `duet courier add`: an admin registers a courier
// (POST /v1/couriers), which labels can then name.
var courierCommand = service.Command{
	Name:    "courier",
	Summary: "register a courier, signed by an admin",
	Run:     runCourier,
}

const courierUsage = `Usage:
  duet courier add --id ID --name NAME [--actor ACTOR] ADMIN

Registers a courier with an op signed by an admin and sent in direct mode
(POST /v1/couriers): the node answers after L1 finality, and the command
prints the courier's record and the L1 height. ACTOR, if given, is a
registered actor of role courier who acts for the courier.

ADMIN names the L2 node and the admin who signs: --node URL --admin ID
--admin-key FILE [--ca PEM], or --cluster FILE (as for duet actor: duet
actor -h).

Exit status: 0 done; 1 the node refused the op (its status, code and
message are printed) or could not be reached; 2 a wrong command line.
`

func runCourier(ctx context.Context, args []string, env service.CommandEnv) int {
	switch {
	case len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help"):
		fmt.Fprint(env.Stdout, courierUsage)
		return 0
	case len(args) == 0 || args[0] != "add":
		if len(args) > 0 {
			fmt.Fprintf(env.Stderr, "duet courier: unknown subcommand %q\n\n", args[0])
		}
		fmt.Fprint(env.Stderr, courierUsage)
		return 2
	}
	fs := flag.NewFlagSet("courier add", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	id := fs.String("id", "", "the courier's id")
	name := fs.String("name", "", "the courier's name")
	actor := fs.String("actor", "", "a registered actor of role courier who acts for it")
	send := env.AdminFlags(fs)
	err := fs.Parse(args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(env.Stdout, courierUsage)
		return 0
	case err != nil:
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *id == "":
		err = errors.New("--id is required")
	case *name == "":
		err = errors.New("--name is required")
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "duet courier add: %v (duet courier -h tells more)\n", err)
		return 2
	}
	return send(ctx, http.MethodPost, PathCouriers, service.MustJSON(Courier{ID: *id, Name: *name, ActorID: *actor}))
}
