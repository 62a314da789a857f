// Package layers holds the test that enforces the import rule of
// docs/ARCHITECTURE.md: a lower layer never imports a higher one.
package layers

import (
	"bufio"
	"bytes"
	"os/exec"
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
	switch top {
	case "internal", "xmltree":
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

func TestImportLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}:{{join .Imports \" \"}}", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		pkg, imports, _ := strings.Cut(sc.Text(), ":")
		l := layer(pkg)
		if l == 0 {
			if strings.HasPrefix(pkg, module+"/") {
				t.Errorf("package %s is not assigned to a layer", pkg)
			}
			continue
		}
		checked++
		for _, imp := range strings.Fields(imports) {
			if il := layer(imp); il > l {
				t.Errorf("%s (layer %d) imports %s (layer %d)", pkg, l, imp, il)
			}
			// Engines stay free of the network layer of mellium.
			if l == 2 && (imp == "mellium.im/xmpp" || imp == "net" || imp == "net/http") {
				t.Errorf("engine %s imports %s", pkg, imp)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d packages checked", checked)
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
