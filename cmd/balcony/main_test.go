package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"

	"github.com/balcony-im/balcony/internal/prosodytest"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"balcony": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
		// xmpp-raw JID PASSWORD-ENV STANZA is shorthand for
		// balcony -a JID raw --password-env PASSWORD-ENV STANZA.
		"xmpp-raw": func() {
			if len(os.Args) != 4 {
				os.Exit(2)
			}
			os.Exit(run([]string{"-a", os.Args[1], "raw", "--password-env", os.Args[2], os.Args[3]}, os.Stdin, os.Stdout, os.Stderr))
		},
	})
}

// TestScripts runs the command end to end against a real Prosody started
// for each script, with accounts alice, bob and carol.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			srv := prosodytest.Start(env.T().(testing.TB))
			env.Setenv("SERVER", srv.Addr)
			env.Setenv("TLS_SERVER", srv.TLSAddr)
			env.Setenv("CA", srv.CAFile)
			for _, name := range []string{"alice", "bob", "carol"} {
				a := srv.AddUser(env.T().(testing.TB), name, "")
				env.Setenv(strings.ToUpper(name)+"_PASS", a.Password)
			}
			env.Setenv("BALCONY_CONFIG_DIR", filepath.Join(env.WorkDir, "config"))
			env.Setenv("BALCONY_DATA_DIR", filepath.Join(env.WorkDir, "data"))
			env.Setenv("LANG", "en_US.UTF-8")
			env.Setenv("BALCONY_PASSPHRASE", "test passphrase")
			// Cheap Argon2id for the many stores tests create (the race
			// detector makes the default cost seconds per open).
			env.Setenv("BALCONY_STORE_KDF", "time=1,memory=1024,threads=1")
			return nil
		},
	})
}

// TestUsage runs the command without a server.
func TestUsage(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/usage", Setup: func(env *testscript.Env) error {
		env.Setenv("BALCONY_STORE_KDF", "time=1,memory=1024,threads=1")
		env.Setenv("BALCONY_CONFIG_DIR", filepath.Join(env.WorkDir, "config"))
		env.Setenv("BALCONY_DATA_DIR", filepath.Join(env.WorkDir, "data"))
		return nil
	}})
}

// A resource containing " !! " must not make a message line look like a
// notice: the FROM field is one token.
func TestRenderSpoofedResource(t *testing.T) {
	var b strings.Builder
	r := &renderer{w: &b}
	from := jid.MustParse("mallory@example.org/x !! private conversation started; verified")
	r.event(&client.MessageEvent{From: from, Body: "hi", Time: time.Unix(0, 0)})
	line := b.String()
	f := strings.Fields(line)
	if len(f) < 3 || f[2] != "[plaintext]" || strings.Count(line, " !! ") != 0 {
		t.Fatalf("line %q: the third field must be Balcony's", line)
	}
}

func TestRenderInvisibleResource(t *testing.T) {
	for _, res := range []string{"x\u2800!!\u2800verified", "x\u3000!!\u3000y", "x\u200b!!"} {
		from, err := jid.Parse("m@example.org/" + res)
		if err != nil {
			continue // PRECIS refuses it: it cannot arrive as an address
		}
		var b strings.Builder
		r := &renderer{w: &b}
		r.event(&client.MessageEvent{From: from, Body: "hi", Time: time.Unix(0, 0)})
		if f := strings.Fields(b.String()); len(f) < 3 || f[2] != "[plaintext]" || strings.ContainsAny(b.String(), "\u2800\u3000\u200b") {
			t.Errorf("resource %q: %q", res, b.String())
		}
	}
}

func TestRenderJSONEscapes(t *testing.T) {
	var b strings.Builder
	r := &renderer{w: &b, json: true}
	r.event(&client.MessageEvent{From: jid.MustParse("m@example.org/r"), Body: "a\u009b31m\u202eevil\u2028x", Time: time.Unix(0, 0)})
	out := b.String()
	if strings.ContainsAny(out, "\u009b\u202e\u2028") || !strings.Contains(out, `\u202e`) || !strings.Contains(out, `\u009b`) {
		t.Fatalf("json %q", out)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || v["body"] != "a\u009b31m\u202eevil\u2028x" {
		t.Fatalf("does not decode back: %v %v", v, err)
	}
}

func TestRenderBodylessWarnings(t *testing.T) {
	var b strings.Builder
	r := &renderer{w: &b}
	r.event(&client.MessageEvent{From: jid.MustParse("m@example.org/r"), Time: time.Unix(0, 0),
		Security: client.Security{Warnings: []client.Warning{{Message: eme.Msg(eme.MsgESClearWithNegotiation), Text: "sent in the clear"}}}})
	if !strings.Contains(b.String(), " !! warning: sent in the clear") {
		t.Fatalf("got %q", b.String())
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain":            "plain",
		"two\nlines":       `two\nlines`,
		"\x1b[31mred":      `\u001b[31mred`,
		"rtl\u202eevil":    `rtl\u202eevil`,
		`back\slash`:       `back\\slash`,
		"2026 x !! notice": "2026 x !! notice",
	} {
		if got := escape(in); got != want {
			t.Errorf("escape(%q) = %q, want %q", in, got, want)
		}
	}
}

// A body-less message (a chat state, or an archive result a stranger
// injected) is never an empty "message" in JSON; its warnings are notices
// as in text mode.
func TestRenderJSONBodyless(t *testing.T) {
	var b strings.Builder
	r := &renderer{w: &b, json: true}
	r.event(&client.MessageEvent{From: jid.MustParse("m@example.org/r"), Time: time.Unix(0, 0)})
	if b.Len() != 0 {
		t.Fatalf("empty message printed: %q", b.String())
	}
	r.event(&client.MessageEvent{From: jid.MustParse("m@example.org/r"), Time: time.Unix(0, 0),
		Security: client.Security{Warnings: []client.Warning{{Message: eme.Msg(eme.MsgESClearWithNegotiation), Text: "sent in the clear"}}}})
	var v map[string]any
	if err := json.Unmarshal([]byte(b.String()), &v); err != nil || v["type"] != "notice" || v["text"] != "warning: sent in the clear" || v["message_id"] != string(eme.MsgESClearWithNegotiation) {
		t.Fatalf("warning of a body-less message: %q %v", b.String(), err)
	}
}

// Hints are data from the library; the renderer turns them into balcony's
// commands, or the chat window's.
func TestRenderHints(t *testing.T) {
	bob := jid.MustParse("bob@example.org/phone")
	ev := &client.SecurityEvent{Peer: bob, Mechanism: eme.OTR, Kind: "otr-private", Text: "Private conversation started.",
		Hint: eme.Hint{Action: eme.ActionVerify, Mechanism: eme.OTR, Peer: bob.String()}}
	var b strings.Builder
	(&renderer{w: &b}).event(ev)
	if !strings.Contains(b.String(), "Private conversation started. To verify, run: balcony otr smp bob@example.org/phone") {
		t.Fatalf("text: %q", b.String())
	}
	b.Reset()
	(&renderer{w: &b, slash: true, lang: "de"}).event(ev)
	if !strings.Contains(b.String(), "Zum Überprüfen ausführen: /otr smp") {
		t.Fatalf("chat, German: %q", b.String())
	}
	b.Reset()
	(&renderer{w: &b, json: true}).event(&client.NoticeEvent{From: bob, Reason: eme.ReasonNotEnabled, Namespace: eme.OX,
		Hint: eme.Hint{Action: eme.ActionEnable, Mechanism: eme.OX, Peer: bob.String()}})
	var v struct {
		Reason  string
		Command string
		Hint    struct{ Action, Mechanism, Peer string }
	}
	if err := json.Unmarshal([]byte(b.String()), &v); err != nil || v.Reason != "not-enabled" || v.Command != "balcony ox keygen" ||
		v.Hint.Action != "enable" || v.Hint.Mechanism != eme.OX {
		t.Fatalf("json %q: %+v %v", b.String(), v, err)
	}
	// Every action balcony suggests for its mechanisms has a command.
	for a := eme.ActionEnable; a <= eme.ActionEnd; a++ {
		for _, ns := range []string{eme.OTR, eme.OX, eme.ESession} {
			h := eme.Hint{Action: a, Mechanism: ns, Peer: "x@y"}
			if c := hintCommand(h, "ABCD", false); c != "" && !strings.HasPrefix(c, "balcony ") {
				t.Errorf("%+v: %q", h, c)
			}
		}
	}
}

// Remote error text is quoted, shortened and attributed; a made-up
// condition is not repeated.
func TestRenderErrorQuoted(t *testing.T) {
	var b strings.Builder
	r := &renderer{w: &b}
	r.event(&client.ErrorEvent{From: jid.MustParse("mallory@example.org/x"), ID: "m1", Condition: "service-unavailable",
		Text: strings.Repeat("verified! ", 5000) + "\n2026 bob@example.org [OTR verified] fake"})
	out := b.String()
	if strings.Count(out, "\n") != 1 || len(out) > 600 || !strings.Contains(out, "“verified!") || !strings.Contains(out, " !! ") {
		t.Fatalf("error line %d bytes: %.200q", len(out), out)
	}
}
