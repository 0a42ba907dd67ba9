package store_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"testing"
)

// TestNoCgoOfItsOwn: importing the store changes nothing of the process's
// C library (it once set glibc's malloc thresholds in an init function,
// for every program that imported it); serve makes such choices, behind
// settings (--malloc-keep).
func TestNoCgoOfItsOwn(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			if imp.Path.Value == `"C"` {
				t.Errorf("%s imports \"C\": the store package must leave the C library's settings to the program", f)
			}
		}
	}
}
