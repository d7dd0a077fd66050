package main

import (
	"bytes"
	"os"
	"testing"
)

const schemaFile = "../../../deploy/config.schema.json"

// The committed schema is what the generator makes of it.
func TestSchemaIsCurrent(t *testing.T) {
	b, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	got, err := generate(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b) {
		t.Fatal("deploy/config.schema.json is not current: run go generate ./checks")
	}
	again, err := generate(got)
	if err != nil || !bytes.Equal(again, got) {
		t.Fatalf("a second run changes the schema again (err %v)", err)
	}
}
