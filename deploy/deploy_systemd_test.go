package deploy_test

import (
	"os"
	"strings"
	"testing"
)

func TestSystemdUnitIsHardened(t *testing.T) {
	b, err := os.ReadFile("systemd/flowprobe.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"\nAmbientCapabilities=CAP_NET_RAW\n", "\nCapabilityBoundingSet=CAP_NET_RAW\n",
		"\nExecReload=/bin/kill -HUP $MAINPID\n", "\nProtectSystem=strict\n", "\nPrivateTmp=yes\n",
		"\nNoNewPrivileges=yes\n", "\nDynamicUser=yes\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
	}
}
