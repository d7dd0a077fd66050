package site

import (
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"
)

// A flow whose vendor table prints a wrong transport is checked and
// requested as corrected; the plan and the request show what is printed.
func TestPlanShowsPrintedForm(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig("site.yml", []byte(`
self_addresses: [192.0.2.10]
products:
  - name: lenovo-xclarity-administrator
    self: lxca
    only: [fwd-smtp, push-google]
    roles:
      smtp-server: {hosts: [192.0.2.25]}
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Plan(cat, cfg, fakeBinder{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range res.Printed {
		got = append(got, p.Flow+": "+p.Printed)
	}
	diffLines(t, "printed", got, []string{
		"fwd-smtp: vendor table prints udp/25",
		"push-google: vendor table prints tcp/443,5288,5299,5230",
	})
	var smtp []string
	for _, r := range res.Rules() {
		if r.Flow == "fwd-smtp" {
			smtp = append(smtp, string(r.Protocol)+"/"+r.Ports+" "+r.Note)
		}
	}
	diffLines(t, "fwd-smtp rules", smtp, []string{"tcp/25 vendor table prints udp/25; Printed \"251\": port 25 with footnote 1. " +
		"The document says UDP, but SMTP runs over TCP: TCP is checked and requested, printed keeps udp/25."})
	for _, tg := range res.Targets {
		if tg.Flow == "fwd-smtp" && (tg.Protocol != probe.TCP || tg.Port != 25) {
			t.Errorf("fwd-smtp checked as %s/%d, want tcp/25", tg.Protocol, tg.Port)
		}
		if tg.Flow == "push-google" && strings.HasPrefix(tg.Host, "android") && (tg.Port == 5288 || tg.Port == 5299) {
			t.Errorf("push-google checks the printed typo %d", tg.Port)
		}
	}
}
