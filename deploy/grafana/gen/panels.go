package main

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// flows is the selector every flow metric is filtered by: the four
// variables, each matched as a regular expression so "All" is ".*".
const flows = `{site=~"$site",product=~"$product",source=~"$source",destination=~"$destination"}`

// ds is the data source every query and variable uses: the one the
// "datasource" variable picks.
var ds = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// variables are site, product, source and destination, each narrowed by
// the ones before it.
func variables() []cog.Builder[dashboard.VariableModel] {
	vars := []struct{ name, label, query string }{
		{"site", "Site", `label_values(flowprobe_check_success, site)`},
		{"product", "Product", `label_values(flowprobe_check_success{site=~"$site"}, product)`},
		{"source", "Source", `label_values(flowprobe_check_success{site=~"$site",product=~"$product"}, source)`},
		{"destination", "Destination", `label_values(flowprobe_check_success{site=~"$site",product=~"$product",source=~"$source"}, destination)`},
	}
	var out []cog.Builder[dashboard.VariableModel]
	for _, v := range vars {
		out = append(out, dashboard.NewQueryVariableBuilder(v.name).
			Label(v.label).
			Datasource(ds).
			Query(dashboard.StringOrMap{Map: map[string]any{
				"query": v.query,
				"refId": "PrometheusVariableQueryEditor-VariableQuery",
			}}).
			Definition(v.query).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			IncludeAll(true).
			Multi(true).
			AllValue(".*").
			Current(dashboard.VariableOption{
				Text:  dashboard.StringOrArrayOfString{String: cog.ToPtr("All")},
				Value: dashboard.StringOrArrayOfString{String: cog.ToPtr("$__all")},
			}).
			Sort(dashboard.VariableSortAlphabeticalAsc))
	}
	return out
}

// instant is a query of the latest value, as a series or as a table.
func instant(expr string, format prometheus.PromQueryFormat) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Expr(expr).Format(format).Instant().Datasource(ds).RefId("A")
}

// series is a range query drawn with a legend.
func series(refID, expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Expr(expr).LegendFormat(legend).
		Format(prometheus.PromQueryFormatTimeSeries).Datasource(ds).RefId(refID)
}

// The panel kinds, each with the data source and the options Grafana
// would take by default spelled out (the SDK's zero values differ: a
// hidden legend, an empty tooltip mode).

func legend() *common.VizLegendOptionsBuilder {
	return common.NewVizLegendOptionsBuilder().ShowLegend(true).
		DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom)
}

func tooltip() *common.VizTooltipOptionsBuilder {
	return common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeSingle).Sort(common.SortOrderNone)
}

func statPanel(id uint32, title string, at dashboard.GridPos, expr string) *stat.PanelBuilder {
	return stat.NewPanelBuilder().Id(id).Title(title).Datasource(ds).GridPos(at).
		WithTarget(instant(expr, prometheus.PromQueryFormatTimeSeries)).
		Orientation(common.VizOrientationAuto).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
}

func tablePanel(id uint32, title string, at dashboard.GridPos, expr string) *table.PanelBuilder {
	return table.NewPanelBuilder().Id(id).Title(title).Datasource(ds).GridPos(at).
		WithTarget(instant(expr, prometheus.PromQueryFormatTable)).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{})).
		CellOptions(common.TableCellOptions{TableColoredBackgroundCellOptions: &common.TableColoredBackgroundCellOptions{
			Type: common.TableCellDisplayModeColorBackground,
		}})
}

func graphPanel(id uint32, title string, at dashboard.GridPos) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().Id(id).Title(title).Datasource(ds).GridPos(at).
		Legend(legend()).Tooltip(tooltip())
}

func grid(x, y, w, h uint32) dashboard.GridPos { return dashboard.GridPos{X: x, Y: y, W: w, H: h} }

func thresholds(steps ...dashboard.Threshold) *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(steps)
}

// step is a threshold step; the first of a list has no value (-Infinity).
func step(color string, value *float64) dashboard.Threshold {
	return dashboard.Threshold{Color: color, Value: value}
}

func fixed(color string) *dashboard.FieldColorBuilder {
	return dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdFixed).FixedColor(color)
}

// valueText maps the values 0 and 1 to a text and a colour each; indexed
// keeps the order Grafana's editor records.
func valueText(text0, color0, text1, color1 string, indexed bool) []dashboard.ValueMapping {
	r0 := dashboard.ValueMappingResult{Text: cog.ToPtr(text0), Color: cog.ToPtr(color0)}
	r1 := dashboard.ValueMappingResult{Text: cog.ToPtr(text1), Color: cog.ToPtr(color1)}
	if indexed {
		r0.Index, r1.Index = cog.ToPtr[int32](0), cog.ToPtr[int32](1)
	}
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
		Type:    dashboard.MappingTypeValueToText,
		Options: map[string]dashboard.ValueMappingResult{"0": r0, "1": r1},
	}}}
}

func passFail() []dashboard.ValueMapping { return valueText("FAIL", "red", "PASS", "green", true) }

func organize(options map[string]any) dashboard.DataTransformerConfig {
	return dashboard.DataTransformerConfig{Id: "organize", Options: options}
}

// unit is the override property that gives some series a unit of their own.
func unit(unit string) []dashboard.DynamicConfigValue {
	return []dashboard.DynamicConfigValue{{Id: "unit", Value: unit}}
}

// outcomeColours gives every outcome of the vocabulary its own colour:
// path outcomes red and orange, service outcomes yellow and blue.
var outcomeColours = []struct{ outcome, colour string }{
	{"ok", "semi-dark-red"},
	{"timeout", "red"},
	{"unreachable", "dark-red"},
	{"refused", "orange"},
	{"no_response", "dark-orange"},
	{"dns_error", "purple"},
	{"tls_error", "yellow"},
	{"auth_error", "dark-yellow"},
	{"protocol_error", "blue"},
	{"service_timeout", "dark-blue"},
	{"local_error", "#8e8e8e"},
}

// panels in reading order: the four stats, the flow matrix, state over
// time, then the diagnostic graphs.
func panels() []cog.Builder[dashboard.Panel] {
	failures := graphPanel(7, "Failures by outcome", grid(0, 24, 12, 8)).
		WithTarget(series("A", `sum by (outcome) (increase(flowprobe_check_failures_total`+flows+`[$__rate_interval]))`, "{{outcome}}")).
		Description("Failed runs by outcome. Path outcomes are red and orange (timeout, unreachable, refused, no_response), service outcomes yellow and blue (tls_error, auth_error, protocol_error, service_timeout), dns_error purple, local_error grey (flowprobe could not run the check), and ok in red: a flow that must be blocked got through.").
		DrawStyle(common.GraphDrawStyleBars).
		Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
	for _, c := range outcomeColours {
		colour, _ := fixed(c.colour).Build()
		failures.OverrideByName(c.outcome, []dashboard.DynamicConfigValue{{Id: "color", Value: colour}})
	}

	return []cog.Builder[dashboard.Panel]{
		statPanel(1, "Flows passing", grid(0, 0, 6, 4),
			`sum(flowprobe_check_success`+flows+`)`).
			ColorScheme(fixed("green")).
			ColorMode(common.BigValueColorModeBackground),
		statPanel(2, "Flows failing", grid(6, 0, 6, 4),
			`count(flowprobe_check_success`+flows+` == 0) or vector(0)`).
			Thresholds(thresholds(step("green", nil), step("red", cog.ToPtr[float64](1)))).
			ColorMode(common.BigValueColorModeBackground),
		statPanel(3, "Targets", grid(12, 0, 6, 4),
			`sum(flowprobe_targets)`),
		statPanel(4, "Config reload", grid(18, 0, 6, 4),
			`min(flowprobe_config_last_reload_successful)`).
			Mappings(valueText("FAILED", "red", "OK", "green", false)).
			ColorMode(common.BigValueColorModeBackground),

		tablePanel(5, "Flow matrix", grid(0, 4, 24, 10),
			`(flowprobe_check_outcome`+flows+` == 1) * on(product,flow,source,destination,target,protocol,port,check,instance,job) group_left() flowprobe_check_success`+flows).
			Description("Current state of every flow: PASS/FAIL after the flow's expectation, and the outcome that explains it.").
			Mappings(passFail()).
			WithTransformation(organize(map[string]any{
				"excludeByName": map[string]bool{"Time": true, "__name__": true, "job": true},
				"renameByName":  map[string]string{"Value": "state"},
				"indexByName": map[string]int{
					"product": 0, "source": 1, "destination": 2, "flow": 3, "target": 4,
					"protocol": 5, "check": 6, "outcome": 7, "Value": 8,
				},
			})),

		statetimeline.NewPanelBuilder().Id(6).Title("State over time").Datasource(ds).GridPos(grid(0, 14, 24, 10)).
			Legend(legend()).Tooltip(tooltip()).
			WithTarget(series("A", `flowprobe_check_success`+flows, "{{product}} {{flow}} {{source}}→{{target}}")).
			Mappings(passFail()).
			ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)).
			Thresholds(thresholds(step("red", nil), step("green", cog.ToPtr[float64](1)))),

		failures,

		graphPanel(8, "Latency by flow", grid(12, 24, 12, 8)).
			WithTarget(series("A", `flowprobe_check_duration_seconds`+flows, "{{product}} {{flow}} {{target}}")).
			Unit("s"),
		graphPanel(9, "Phase durations", grid(0, 32, 12, 8)).
			WithTarget(series("A", `avg by (phase) (flowprobe_check_phase_duration_seconds`+flows+`)`, "{{phase}}")).
			Unit("s"),

		tablePanel(10, "TLS certificate expiry", grid(12, 32, 12, 8),
			`flowprobe_tls_cert_expiry_timestamp_seconds`+flows+` - time()`).
			Unit("s").
			Thresholds(thresholds(step("red", nil), step("orange", cog.ToPtr[float64](0)), step("green", cog.ToPtr[float64](1209600)))).
			WithTransformation(organize(map[string]any{
				"excludeByName": map[string]bool{"Time": true, "job": true},
				"renameByName":  map[string]string{"Value": "expires in"},
			})),

		graphPanel(11, "NTP offset", grid(0, 40, 12, 8)).
			WithTarget(series("A", `flowprobe_ntp_offset_seconds`+flows, "{{target}}")).
			Unit("s"),
		graphPanel(12, "ICMP round trip and loss", grid(12, 40, 12, 8)).
			WithTarget(series("A", `flowprobe_icmp_rtt_seconds`+flows, "rtt {{target}}")).
			WithTarget(series("B", `flowprobe_icmp_packet_loss_ratio`+flows, "loss {{target}}")).
			Unit("s").
			OverrideByQuery("B", unit("percentunit")),
		graphPanel(13, "Scheduler lag (p99) and checks in flight", grid(0, 48, 24, 8)).
			WithTarget(series("A", `histogram_quantile(0.99, sum by (le, instance) (rate(flowprobe_scheduler_lag_seconds_bucket[$__rate_interval])))`, "lag p99 {{instance}}")).
			WithTarget(series("B", `flowprobe_checks_in_flight`, "in flight {{instance}}")).
			Unit("s").
			OverrideByQuery("B", unit("short")),
	}
}
