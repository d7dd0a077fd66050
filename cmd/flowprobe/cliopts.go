package main

import (
	"fmt"
	"os"
	"time"

	"github.com/flowprobe/flowprobe/probe/report"
	"github.com/flowprobe/flowprobe/probe/site"

	"github.com/alecthomas/kingpin/v2"
)

// The command-line conventions the subcommands share: the site config as
// --config.file (the Prometheus flag) or as a positional FILE, and one
// --output flag whose format names mean the same in every command.

// configFileArg lets cmd take its site config as a positional FILE besides
// --config.file, which is bound to file. Giving both is a usage error.
func configFileArg(cmd *kingpin.CmdClause, file *string) {
	var arg string
	cmd.Arg("file", "Site config file (instead of --config.file).").StringVar(&arg)
	cmd.PreAction(func(*kingpin.ParseContext) error {
		switch {
		case arg == "":
		case *file != "":
			return fmt.Errorf("%s: give the config file once (--config.file or FILE)", cmd.FullCommand())
		default:
			*file = arg
		}
		return nil
	})
}

// outputFlag registers --output (-o) with the formats a command writes.
// "text" and "table" both name the human-readable report; the value is
// stored under human, the name the command's writer knows.
func outputFlag(cmd *kingpin.CmdClause, target *string, human string, formats ...string) *kingpin.FlagClause {
	names := append([]string{"text", "table"}, formats...)
	fl := cmd.Flag("output", fmt.Sprintf("Output format: text (or table), %s.", joinOr(formats))).Short('o').Default(human)
	fl.EnumVar(target, names...)
	cmd.PreAction(func(*kingpin.ParseContext) error {
		if *target == "text" || *target == "table" {
			*target = human
		}
		return nil
	})
	return fl
}

// joinOr joins names as "a, b or c".
func joinOr(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	out := names[0]
	for _, n := range names[1 : len(names)-1] {
		out += ", " + n
	}
	return out + " or " + names[len(names)-1]
}

// runHeader says where, when and from which config a check runs.
func runHeader(cfg *site.Config) report.RunHeader {
	host, _ := os.Hostname()
	src := cfg.File
	if src == "" {
		src = "command line"
	}
	return report.RunHeader{Host: host, Time: time.Now(), Config: src}
}
