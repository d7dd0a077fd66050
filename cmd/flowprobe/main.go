// Command flowprobe proves that the network flows a product needs really
// pass: it runs the vendors' port tables as checks, once (check) or on a
// schedule (serve), and exports the verdicts as Prometheus metrics.
//
// main stays thin: each subcommand lives in its own file and registers its
// flags and action with register.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
)

// Exit codes, as promtool uses them, and 130 for an interrupted run as
// shells report a command ended by SIGINT.
const (
	exitOK          = 0   // every required flow passes
	exitFailed      = 1   // some required flow failed
	exitUsage       = 2   // usage or config error
	exitLocal       = 2   // this machine could not run a check (local_error)
	exitInterrupted = 130 // Ctrl-C or SIGTERM ended the run before every check finished
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// cli carries what every subcommand needs.
type cli struct {
	app    *kingpin.Application
	stdout io.Writer
	stderr io.Writer
	// actions maps a command's full name ("catalog list") to its action.
	actions map[string]func(ctx context.Context) int
}

// register adds an action for a command clause.
func (c *cli) register(cmd *kingpin.CmdClause, action func(ctx context.Context) int) {
	c.actions[cmd.FullCommand()] = action
}

// run runs flowprobe with args until SIGINT or SIGTERM (os.Interrupt,
// syscall.SIGTERM) cancels its context.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}

// runContext runs flowprobe with args; cancelling ctx is what Ctrl-C does.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("flowprobe", "Proves that the network flows a product needs really pass, and exports the verdicts as Prometheus metrics.")
	// kingpin goes on parsing after --help has printed and called
	// Terminate; drop whatever it would print after that.
	exited := false
	quiet := writerFunc(func(b []byte) (int, error) {
		if exited {
			return len(b), nil
		}
		return stderr.Write(b)
	})
	app.UsageWriter(quiet)
	app.ErrorWriter(quiet)
	app.HelpFlag.Short('h')
	app.Terminate(func(int) { exited = true })

	c := &cli{app: app, stdout: stdout, stderr: stderr, actions: map[string]func(context.Context) int{}}
	app.Flag("version", "Print the version and build information (as `flowprobe version`).").PreAction(func(*kingpin.ParseContext) error {
		printVersion(stdout)
		exited = true
		return nil
	}).Bool()
	for _, add := range []func(*cli){
		addServe, addCheck, addProbe, addTrace, addCatalog, addPlan, addListen, addValidate, addVersion,
	} {
		add(c)
	}

	if len(args) == 0 {
		app.Usage(nil)
		return exitUsage
	}
	cmd, err := app.Parse(args)
	if exited {
		return exitOK // --help or --version printed
	}
	if err != nil {
		fmt.Fprintf(stderr, "flowprobe: %v (try --help)\n", err)
		return exitUsage
	}
	action, ok := c.actions[cmd]
	if !ok {
		fmt.Fprintf(stderr, "flowprobe: %v\n", errors.New("no command given (try --help)"))
		return exitUsage
	}
	return action(ctx)
}

// writerFunc adapts a function to io.Writer.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
