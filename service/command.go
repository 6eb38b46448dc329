package service

import (
	"context"
	"flag"
	"io"
)

// Command is a subcommand an application adds to the duet binary:
// `duet <Name> ARGS...` runs it when Name is not one of the binary's own
// commands. It is how an app gives operators its admin tasks (the supply
// chain's `duet courier add`) without the framework knowing them.
type Command struct {
	// Name is the first word after duet: 1-32 characters of a-z, 0-9
	// and -. If two apps of a binary use one name, the user picks with
	// --app NAME.
	Name string
	// Summary is one line for the usage text: the arguments, then what
	// it does.
	Summary string
	// Run runs `duet <Name> args...` and returns the exit status: 0 done,
	// 1 failed (e.g. the node refused the op), 2 a wrong command line.
	// -h prints the command's usage and returns 0.
	Run func(ctx context.Context, args []string, env CommandEnv) int
}

// CommandEnv is what the binary gives a Command.
type CommandEnv struct {
	Stdout, Stderr io.Writer
	// AdminFlags adds to fs the flags that name an L2 node and an admin
	// who signs (--node URL, --admin ID, --admin-key FILE and --ca PEM,
	// or --cluster FILE of a duet up network), as duet actor takes them,
	// and returns the op to call after fs.Parse.
	AdminFlags func(fs *flag.FlagSet) AdminOp
}

// AdminOp signs one op as the admin the flags name and sends it to their
// node in direct mode (a one-op session, answered after L1 finality). It
// prints the answer to Stdout (its body, then the L1 height), or the
// node's error to Stderr, and returns the exit status: 0 done, 1 the node
// refused the op or could not be reached, 2 the admin flags are missing
// or unusable (each error names the flag of fs.Name()'s command).
type AdminOp func(ctx context.Context, method, path string, body []byte) int
