package report

import (
	"bytes"
	"testing"
)

func TestWriteJSONListMatchesWriteJSON(t *testing.T) {
	type elem struct {
		A string            `json:"a"`
		M map[string]string `json:"m"`
		F float64           `json:"f,omitempty"`
	}
	for _, list := range [][]elem{
		nil,
		{{A: "<x>&", M: map[string]string{"b": "2", "a": "1"}}},
		{{A: "one", F: 0.25}, {A: "two", M: map[string]string{}}, {A: "three\n"}},
	} {
		var want, got bytes.Buffer
		if err := writeJSON(&want, append([]elem{}, list...)); err != nil {
			t.Fatal(err)
		}
		if err := writeJSONList(&got, len(list), func(i int) any { return list[i] }); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("writeJSONList:\n%s\nwriteJSON:\n%s", got.String(), want.String())
		}
	}
}
