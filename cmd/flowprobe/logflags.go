package main

import (
	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
)

// addLogFlags adds --log.level and --log.format, named as every Prometheus
// component names them, to one command.
func addLogFlags(cmd *kingpin.CmdClause, cfg *promslog.Config) {
	cfg.Level = promslog.NewLevel()
	cmd.Flag(promslogflag.LevelFlagName, promslogflag.LevelFlagHelp).Default("info").
		HintOptions(promslog.LevelFlagOptions...).SetValue(cfg.Level)
	cfg.Format = promslog.NewFormat()
	cmd.Flag(promslogflag.FormatFlagName, promslogflag.FormatFlagHelp).Default("logfmt").
		HintOptions(promslog.FormatFlagOptions...).SetValue(cfg.Format)
}
