// Package layers holds the test that enforces the import rule of
// docs/ARCHITECTURE.md: a lower layer never imports a higher one.
package layers

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/balcony-im/balcony"

// layer returns the layer of a package of this module (1 helpers, 2
// engines, 3 store, 4 client, 5 command), 0 for others.
func layer(pkg string) int {
	rel, ok := strings.CutPrefix(pkg, module+"/")
	if !ok {
		return 0
	}
	top, _, _ := strings.Cut(rel, "/")
	if rel == "internal/clienttest" {
		// Test helpers for the XMPP layer: they connect clients.
		return 4
	}
	if rel == "internal/storeoutbox" {
		// Glue between the client and the store, as the command is.
		return 5
	}
	switch top {
	case "internal", "xmltree", "trust":
		return 1
	case "eme", "ox", "otr", "esession", "omemo":
		return 2
	case "store":
		return 3
	case "client":
		return 4
	case "cmd":
		return 5
	}
	return 0
}

// packages returns every package of the module with its (non-test)
// imports, from go list.
func packages(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}:{{join .Imports \" \"}}", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		pkg, imports, _ := strings.Cut(sc.Text(), ":")
		pkgs[pkg] = strings.Fields(imports)
	}
	return pkgs
}

func TestImportLayers(t *testing.T) {
	checked := 0
	for pkg, imports := range packages(t) {
		l := layer(pkg)
		if l == 0 {
			if strings.HasPrefix(pkg, module+"/") {
				t.Errorf("package %s is not assigned to a layer", pkg)
			}
			continue
		}
		checked++
		for _, imp := range imports {
			if il := layer(imp); il > l {
				t.Errorf("%s (layer %d) imports %s (layer %d)", pkg, l, imp, il)
			}
			// Engines stay free of the network layer of mellium.
			if l == 2 && (imp == "mellium.im/xmpp" || imp == "net" || imp == "net/http") {
				t.Errorf("engine %s imports %s", pkg, imp)
			}
			if msg := seamRule(pkg, imp); msg != "" {
				t.Errorf("%s imports %s: %s", pkg, imp, msg)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d packages checked", checked)
	}
}

func TestSeamRule(t *testing.T) {
	for _, tc := range []struct {
		pkg, imp string
		bad      bool
	}{
		{module + "/client", module + "/store", true},
		{module + "/client", module + "/client/otr", true},
		{module + "/client/otr", module + "/store", true},
		{module + "/client/ox", module + "/store/pgstore", true},
		{module + "/client/ox", module + "/client/otr", true},
		{module + "/client/ox", module + "/client", false},
		{module + "/client/ox", module + "/trust", false},
		{module + "/cmd/balcony", module + "/store", false},
		{module + "/cmd/balcony", module + "/client/otr", false},
	} {
		if got := seamRule(tc.pkg, tc.imp) != ""; got != tc.bad {
			t.Errorf("%s -> %s: refused %v, want %v", tc.pkg, tc.imp, got, tc.bad)
		}
	}
}

func TestLayerOf(t *testing.T) {
	for pkg, want := range map[string]int{
		module + "/internal/modp": 1, module + "/otr": 2, module + "/store": 3,
		module + "/client": 4, module + "/cmd/balcony": 5, "mellium.im/xmpp": 0,
	} {
		if got := layer(pkg); got != want {
			t.Errorf("layer(%s) = %d, want %d", pkg, got, want)
		}
	}
}

// seamRule checks the rules of the XMPP layer (layer 4) beyond the layer
// order: the core (client) knows no store and no mechanism, a mechanism's
// glue (client/NAME) knows the core and its engine but neither the store
// nor another mechanism's glue. It returns what pkg importing imp breaks,
// or "".
func seamRule(pkg, imp string) string {
	const core = module + "/client"
	glue := func(p string) bool { return strings.HasPrefix(p, core+"/") }
	store := imp == module+"/store" || strings.HasPrefix(imp, module+"/store/")
	switch {
	case pkg == core && store:
		return "the core never imports the store (mechanisms declare the storage they need)"
	case pkg == core && glue(imp):
		return "the core never imports a mechanism's glue (mechanisms register themselves)"
	case glue(pkg) && store:
		return "a mechanism's glue declares the storage it needs instead of importing the store"
	case glue(pkg) && glue(imp):
		return "the glue of one mechanism never imports another's"
	}
	return ""
}

// TestPublicAPIHasNoInternalTypes: what go doc shows of a public package
// (its exported declarations) names no type of an internal package, which
// a user of the module could not name or build.
func TestPublicAPIHasNoInternalTypes(t *testing.T) {
	checked := 0
	for pkg, imports := range packages(t) {
		if strings.Contains(pkg, "/internal") || strings.Contains(pkg, "/cmd/") {
			continue
		}
		var internal []string
		for _, imp := range imports {
			if strings.Contains(imp, "/internal/") || strings.HasSuffix(imp, "/internal") {
				internal = append(internal, imp[strings.LastIndex(imp, "/")+1:]+".")
			}
		}
		if len(internal) == 0 {
			continue
		}
		doc, err := exec.Command("go", "doc", "-all", pkg).Output()
		if err != nil {
			t.Fatalf("go doc %s: %v", pkg, err)
		}
		checked++
		for _, line := range strings.Split(string(doc), "\n") {
			code, _, _ := strings.Cut(line, "//")
			if strings.HasPrefix(code, "    ") || strings.TrimSpace(code) == "" {
				continue // documentation text
			}
			for _, q := range internal {
				if strings.Contains(code, q) {
					t.Errorf("%s: exported declaration names an internal package: %s", pkg, strings.TrimSpace(line))
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no public package imports an internal one: the test checks nothing")
	}
}

// TestNoLongFiles keeps every non-test Go file of the module under 800
// lines, so that a reader finds a rule's room without paging through a
// file that holds several.
func TestNoLongFiles(t *testing.T) {
	const limit = 800
	out, err := exec.Command("go", "list", "-f", `{{.Dir}}{{range .GoFiles}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		for _, name := range fields[1:] {
			path := filepath.Join(fields[0], name)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			checked++
			if n := bytes.Count(data, []byte("\n")); n > limit {
				t.Errorf("%s has %d lines (at most %d outside tests): split it by concern", path, n, limit)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d files checked: go list output %q", checked, out)
	}
}
