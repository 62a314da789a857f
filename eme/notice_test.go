package eme

import (
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/language"
)

// checkClean fails if s has characters a terminal could interpret or that
// reorder text, or more than one line.
func checkClean(t testing.TB, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Errorf("invalid UTF-8 in %q", s)
	}
	for _, r := range s {
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Zl, unicode.Zp) {
			t.Errorf("character %U in %q", r, s)
			return
		}
	}
}

var allReasons = func() []Reason {
	var rs []Reason
	for r := ReasonUnspecified; r < numReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}()

// TestCatalogueComplete fails if any language lacks any message, or a
// translation does not keep the verbs of its key.
func TestCatalogueComplete(t *testing.T) {
	en := translations[language.English]
	if len(en) == 0 {
		t.Fatal("no English catalogue")
	}
	want := []language.Tag{language.English, language.German, language.French, language.Spanish, language.Russian}
	if got := Languages(); len(got) != len(want) {
		t.Fatalf("Languages() = %v, want %v", got, want)
	}
	for i, tag := range Languages() {
		if tag != want[i] {
			t.Errorf("Languages()[%d] = %v, want %v", i, tag, want[i])
		}
	}
	if len(translations) != len(want) {
		t.Errorf("%d catalogues, want %d", len(translations), len(want))
	}
	// Every reason has a key, and every key is in the English catalogue.
	for _, r := range allReasons {
		if reasonKeys[r] == "" {
			t.Errorf("no message for reason %v", r)
		}
		if _, ok := en[reasonKeys[r]]; !ok {
			t.Errorf("English lacks the message for %v", r)
		}
	}
	for key, msg := range en {
		if key != msg {
			t.Errorf("English message differs from its key: %q", msg)
		}
	}
	verbs := regexp.MustCompile(`%[a-z]`)
	for _, tag := range want {
		tr := translations[tag]
		for key := range en {
			msg, ok := tr[key]
			if !ok || strings.TrimSpace(msg) == "" {
				t.Errorf("%v lacks %q", tag, key)
				continue
			}
			if a, b := verbs.FindAllString(key, -1), verbs.FindAllString(msg, -1); strings.Join(a, "") != strings.Join(b, "") {
				t.Errorf("%v: %q has verbs %v, key has %v", tag, msg, b, a)
			}
			if tag != language.English && msg == key {
				t.Errorf("%v: %q is not translated", tag, key)
			}
			checkClean(t, msg)
		}
		if len(tr) != len(en) {
			t.Errorf("%v has %d messages, English %d", tag, len(tr), len(en))
		}
	}
}

// TestNoticeEveryLanguage renders every reason in every language and checks
// that each one is distinct, translated and names the mechanism.
func TestNoticeEveryLanguage(t *testing.T) {
	for _, lang := range Languages() {
		seen := map[string]Reason{}
		for _, r := range allReasons {
			n := NewNotice(OTR, "", r)
			if r == ReasonDisagreement {
				n.Conflicting = []string{OTR, OX}
			}
			n.Sender = "mallory@evil.example"
			text := n.Text(lang)
			checkClean(t, text)
			if prev, dup := seen[text]; dup {
				t.Errorf("%v: reasons %v and %v give the same text %q", lang, prev, r, text)
			}
			seen[text] = r
			switch r {
			case ReasonUnreadable, ReasonMalformedCopy, ReasonInvalidSender:
				// Not about a mechanism.
			case ReasonForgedCopy:
				if !strings.Contains(text, "“mallory@evil.example”") || strings.Contains(text, "OTR") {
					t.Errorf("%v %v: %q does not name the quoted sender alone", lang, r, text)
				}
			default:
				if !strings.Contains(text, "OTR (urn:xmpp:otr:0)") {
					t.Errorf("%v %v: %q does not name the mechanism", lang, r, text)
				}
			}
			if lang != language.English {
				if en := n.Text(language.English); text == en {
					t.Errorf("%v %v: not translated: %q", lang, r, text)
				}
			}
			hasHint := n.Hint.Action != ActionNone
			wantHint := r == ReasonNotEnabled || r == ReasonNoSession || r == ReasonSessionRequested
			if hasHint != wantHint {
				t.Errorf("%v %v: hint %+v, want one: %v", lang, r, n.Hint, wantHint)
			}
			if h := n.Hint.Text(lang, "balcony otr start juliet@capulet.lit"); wantHint && !strings.HasSuffix(h, " balcony otr start juliet@capulet.lit") {
				t.Errorf("%v %v: hint text %q", lang, r, h)
			}
			if r == ReasonDisagreement && !strings.Contains(text, "OpenPGP for XMPP (urn:xmpp:openpgp:0)") {
				t.Errorf("%v: disagreement does not list both mechanisms: %q", lang, text)
			}
		}
	}
}

// TestNoticeXEPText checks the notice against XEP-0380 §3.1.
func TestNoticeXEPText(t *testing.T) {
	spec := string(readTestdata(t, "xep0380/xep-0380.xml"))
	m := regexp.MustCompile(`(?s)<div class='example'>\s*<p>(This message was encrypted with OTR.*?)</p>`).FindStringSubmatch(spec)
	if m == nil {
		t.Fatal("notice example not found in XEP-0380")
	}
	want := strings.Join(strings.Fields(m[1]), " ")
	if got := NewNotice(OTR, "", ReasonUnspecified).Text(language.English); got != want {
		t.Errorf("notice = %q, XEP-0380 §3.1 shows %q", got, want)
	}
	// The Detection of XEP-0380 example 1 gives the same notice.
	d, err := Detect(readTestdata(t, "xep0380/example1.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Notice(ReasonUnspecified).String(); got != want {
		t.Errorf("notice for example 1 = %q, want %q", got, want)
	}
}

func TestNoticeLanguageMatching(t *testing.T) {
	n := NewNotice(OX, "", ReasonNoKey)
	tests := []struct {
		lang, prefix string
	}{
		{"en", "This message"},
		{"en-GB", "This message"},
		{"de", "Diese Nachricht"},
		{"de-CH", "Diese Nachricht"},
		{"de-AT-u-co-phonebk", "Diese Nachricht"},
		{"fr-CA", "Ce message"},
		{"es-419", "Este mensaje"},
		{"es-MX", "Este mensaje"},
		{"ru-RU", "Это сообщение"},
		{"pt-BR", "This message"},
		{"ja", "This message"},
		{"und", "This message"},
	}
	for _, tc := range tests {
		if got := n.Text(language.Make(tc.lang)); !strings.HasPrefix(got, tc.prefix) {
			t.Errorf("Text(%s) = %q, want it to start with %q", tc.lang, got, tc.prefix)
		}
	}
	if got := n.Text(language.Tag{}); !strings.HasPrefix(got, "This message") {
		t.Errorf("Text(zero tag) = %q", got)
	}
}

func TestNoticeMechanisms(t *testing.T) {
	tests := []struct {
		n    Notice
		lang language.Tag
		want string
	}{
		{NewNotice("urn:example:crypt:0", "Example Crypt", ReasonNotSupported), language.English,
			"This message was encrypted with “Example Crypt” (urn:example:crypt:0) and could not be decrypted: Balcony does not support this mechanism."},
		{NewNotice("urn:example:crypt:0", "", ReasonNotSupported), language.German,
			"Diese Nachricht wurde mit einem unbekannten Verfahren (urn:example:crypt:0) verschlüsselt und konnte nicht entschlüsselt werden: Balcony unterstützt dieses Verfahren nicht."},
		{NewNotice("", "", ReasonMalformed), language.Russian,
			"Это сообщение зашифровано с помощью неизвестного механизма, и его не удалось расшифровать: оно имеет неверный формат."},
		{NewNotice(ESession, "", ReasonNoSession), language.French,
			"Ce message a été chiffré avec Encrypted Sessions (http://www.xmpp.org/extensions/xep-0200.html#ns) et n’a pas pu être déchiffré : aucune session chiffrée n’est établie avec ce contact."},
		{Notice{Namespace: OX, Reason: ReasonVerificationFailed, Detail: "ox: signature by unknown key\x1b[2J"}, language.Spanish,
			"Este mensaje se cifró con OpenPGP for XMPP (urn:xmpp:openpgp:0) y no se pudo descifrar: falló la verificación de su firma o de su integridad. Detalles: ox: signature by unknown key[2J"},
		{Notice{Reason: ReasonDisagreement, Conflicting: []string{OTR, "urn:example:x"}}, language.English,
			"This message carries contradictory encryption markers (OTR (urn:xmpp:otr:0), urn:example:x) and was not displayed."},
		{Notice{Namespace: OMEMO2, Reason: ReasonNotSupported, Hint: Hint{Action: ActionEnable, Mechanism: OMEMO2}}, language.English,
			"This message was encrypted with OMEMO 2 (urn:xmpp:omemo:2) and could not be decrypted: Balcony does not support this mechanism."},
		{Notice{Reason: ReasonUnreadable, Detail: "eme: message larger than 1048576 bytes: eme: input too large"}, language.English,
			"This message could not be read: it is malformed or too large. Details: eme: message larger than 1048576 bytes: eme: input too large"},
		{Notice{Reason: ReasonUnreadable}, language.Russian,
			"Это сообщение не удалось прочитать: оно имеет неверный формат или слишком велико."},
		{Notice{Namespace: OTR, Reason: Reason(99)}, language.English,
			"This message was encrypted with OTR (urn:xmpp:otr:0) and could not be decrypted."},
	}
	for _, tc := range tests {
		if got := tc.n.Text(tc.lang); got != tc.want {
			t.Errorf("Text(%v) =\n %q\nwant\n %q", tc.lang, got, tc.want)
		}
	}
}

func TestDetectionNotice(t *testing.T) {
	cases := map[string]struct {
		stanza    string
		reason    Reason
		want      Reason
		namespace string
		name      string
	}{
		"plain reason":        {msg(payloadXML[OX], tag(OX)), ReasonNoKey, ReasonNoKey, OX, "OpenPGP for XMPP"},
		"tag without payload": {msg(body("x"), tag(OX)), ReasonNoKey, ReasonMalformed, OX, "OpenPGP for XMPP"},
		"disagreement":        {msg(payloadXML[OX], tag(OTR)), ReasonNotEnabled, ReasonDisagreement, "", ""},
		"malformed tag":       {msg(`<encryption xmlns='urn:xmpp:eme:0'/>`), ReasonNotSupported, ReasonMalformed, "", ""},
		"unknown":             {msg(`<encryption xmlns='urn:xmpp:eme:0' namespace='urn:example:x' name=' Ex  Crypt '/>`), ReasonNotSupported, ReasonNotSupported, "urn:example:x", "“Ex Crypt”"},
	}
	for name, tc := range cases {
		d, err := Detect([]byte(tc.stanza))
		if err != nil {
			t.Fatal(err)
		}
		n := d.Notice(tc.reason)
		if n.Reason != tc.want || n.Namespace != tc.namespace || n.MechanismName != tc.name {
			t.Errorf("%s: Notice = %+v, want reason %v, namespace %q, name %q", name, n, tc.want, tc.namespace, tc.name)
		}
		if tc.want == ReasonDisagreement && len(n.Conflicting) != 2 {
			t.Errorf("%s: Conflicting = %v", name, n.Conflicting)
		}
	}
}

// TestNoticeHints: a notice names what the user can do as data, for the
// mechanisms Balcony has; the text never carries a command.
func TestNoticeHints(t *testing.T) {
	for _, tc := range []struct {
		ns     string
		reason Reason
		want   Action
	}{
		{OX, ReasonNotEnabled, ActionEnable},
		{OTR, ReasonSessionRequested, ActionStartSession},
		{ESession, ReasonNoSession, ActionStartSession},
		{OTR, ReasonNoKey, ActionNone},
		{"urn:example:crypt:0", ReasonNotEnabled, ActionNone},
	} {
		n := NewNotice(tc.ns, "", tc.reason)
		if n.Hint.Action != tc.want || (tc.want != ActionNone && n.Hint.Mechanism != tc.ns) {
			t.Errorf("%s %v: hint %+v, want %v", tc.ns, tc.reason, n.Hint, tc.want)
		}
		if strings.Contains(n.Text(language.English), "run:") {
			t.Errorf("%s %v: a command in the text: %q", tc.ns, tc.reason, n.Text(language.English))
		}
	}
}

func TestReasonText(t *testing.T) {
	for _, r := range allReasons {
		b, err := r.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		if back, ok := ParseReason(string(b)); !ok || back != r {
			t.Errorf("%v: %q parses as %v %v", r, b, back, ok)
		}
	}
	if _, ok := ParseReason("nonsense"); ok {
		t.Error("ParseReason accepted nonsense")
	}
}

func TestReasonString(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range allReasons {
		s := r.String()
		if s == "" || strings.Contains(s, "?") || seen[s] {
			t.Errorf("Reason(%d).String() = %q", int(r), s)
		}
		seen[s] = true
	}
	if Reason(-1).String() != "Reason(?)" || numReasons.String() != "Reason(?)" {
		t.Error("out-of-range Reason has a name")
	}
}

func TestSanitizeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Example Crypt", "“Example Crypt”"},
		{"  Example \t\n Crypt  ", "“Example Crypt”"},
		{"", ""},
		{" \u202e\u200b\x00 ", ""},
		{"Evil\u202eCrypt", "“EvilCrypt”"},
		{"a\u0085b", "“a b”"},
		{`say "hi"`, "“say 'hi'”"},
		{"«x» „y“ ”z”", "“'x' 'y' 'z'”"},
		{"“Quoted”", "“Quoted”"},
		{"q\u0301\u0302\u0303\u0304", "“q\u0301\u0302”"}, // no precomposed form
		{"\u0301leading mark", "“leading mark”"},
		{"e\u0301", "“\u00e9”"}, // NFC
		{"\uE000private\U000F0000", "“private”"},
		{"\ufdd0nonchar\uffff", "“nonchar”"},
		{"invalid \xff utf-8", "“invalid utf-8”"},
		{strings.Repeat("a", MaxNameRunes), "“" + strings.Repeat("a", MaxNameRunes) + "”"},
		{strings.Repeat("a", MaxNameRunes+1), "“" + strings.Repeat("a", MaxNameRunes-1) + "…”"},
		{strings.Repeat("ж", 1000), "“" + strings.Repeat("ж", MaxNameRunes-1) + "…”"},
		{strings.Repeat("a", MaxNameRunes-2) + " bcd", "“" + strings.Repeat("a", MaxNameRunes-2) + "…”"},
		{strings.Repeat("a", MaxNameRunes-1) + "e\u0301\u0302x", "“" + strings.Repeat("a", MaxNameRunes-1) + "…”"},
		// Only a bounded prefix is examined: a name made of dropped
		// characters yields nothing, however it ends.
		{strings.Repeat("\u200b", 10000) + "x", ""},
	}
	for _, tc := range tests {
		got := SanitizeName(tc.in)
		if got != tc.want {
			t.Errorf("SanitizeName(%.30q) = %q, want %q", tc.in, got, tc.want)
		}
		if again := SanitizeName(got); again != got {
			t.Errorf("SanitizeName not idempotent: %q -> %q", got, again)
		}
		if n := utf8.RuneCountInString(got); n > MaxNameRunes+2 {
			t.Errorf("SanitizeName(%.30q) has %d runes", tc.in, n)
		}
		checkClean(t, got)
	}
}

// TestNoticeConcurrent renders notices from several goroutines; run with
// -race it checks that the shared catalogue is safe for concurrent use.
func TestNoticeConcurrent(t *testing.T) {
	want := map[language.Tag]string{}
	n := NewNotice(OTR, "", ReasonNoSession)
	for _, lang := range Languages() {
		want[lang] = n.Text(lang)
	}
	errs := make(chan string, 8*len(want))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lang, w := range want {
				if got := n.Text(lang); got != w {
					errs <- got
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for got := range errs {
		t.Errorf("concurrent Text = %q", got)
	}
}

func TestQuoteRemote(t *testing.T) {
	long := strings.Repeat("ab ", 20000)
	for in, want := range map[string]string{
		"":                          "",
		"\u202e\x1b[31m":            "“[31m”",
		"item not found":            "“item not found”",
		"line one\nline two":        "“line one line two”",
		`say "verified"`:            "“say 'verified'”",
		"  spaced  out  ":           "“spaced out”",
		"x \u200b!!\u200b verified": "“x !! verified”",
	} {
		if got := QuoteRemote(in); got != want {
			t.Errorf("QuoteRemote(%q) = %q, want %q", in, got, want)
		}
	}
	got := QuoteRemote(long)
	if n := utf8.RuneCountInString(got); n > MaxRemoteTextRunes+2 || !strings.HasSuffix(got, "…”") {
		t.Errorf("long text: %d runes, %q", n, got[len(got)-20:])
	}
}
