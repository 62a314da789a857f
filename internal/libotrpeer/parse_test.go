package libotrpeer

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line  string
		check func(Output) bool
	}{
		{"NET P09UUjp4Lg==", func(o Output) bool { return len(o.Net) == 1 && string(o.Net[0]) == "?OTR:x." }},
		{"MSG aGk= ENC", func(o Output) bool { return string(o.Messages[0].Text) == "hi" && o.Messages[0].Encrypted }},
		{"MSG = PLAIN", func(o Output) bool { return o.Messages[0].Text != nil && len(o.Messages[0].Text) == 0 }},
		{"TLV 1 =", func(o Output) bool { return o.TLVs[0].Type == 1 && len(o.TLVs[0].Data) == 0 }},
		{"EVT GONE_SECURE 0000ABCD", func(o Output) bool { return o.Events[0].Instance == 0xabcd }},
		{"EVT STILL_SECURE 1", func(o Output) bool { return o.Events[0].IsReply }},
		{"EVT SMP ASK_FOR_ANSWER 25 cT8=", func(o Output) bool {
			e := o.Events[0]
			return e.SMP == SMPAskForAnswer && e.Progress == 25 && string(e.Question) == "q?"
		}},
		{"EVT SMP SUCCESS 100 -", func(o Output) bool { return o.HasSMP(SMPSuccess) && o.Events[0].Question == nil }},
		{"EVT MSG CONNECTION_ENDED - 0", func(o Output) bool { return o.HasMsg(MsgConnectionEnded) }},
		{"EVT SYMKEY 7 ZGF0YQ== " + string(bytes.Repeat([]byte("AB"), 32)), func(o Output) bool {
			e := o.Events[0]
			return e.Use == 7 && string(e.UseData) == "data" && len(e.Key) == 32 && e.Key[0] == 0xab
		}},
		{"EVT NEW_FINGERPRINT 0123456789ABCDEF0123456789ABCDEF01234567", func(o Output) bool { return o.Has(KindNewFingerprint) }},
		{"STATE encrypted 00000100 00000200 3 0102030405060708 0 1", func(o Output) bool { return len(o.result("STATE")) == 7 }},
	} {
		var o Output
		if err := o.parse(tc.line); err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if !tc.check(o) {
			t.Errorf("%q parsed as %+v", tc.line, o)
		}
	}
	for _, line := range []string{
		"", "NET", "NET -", "NET !!", "NET YQ", "NET YQ== x", "MSG YQ== MAYBE",
		"TLV 70000 =", "EVT", "EVT NOPE", "EVT GONE_SECURE xyz", "EVT SMP SUCCESS",
		"EVT SYMKEY 1 = 00", "EVT NEW_FINGERPRINT 00", "WHAT", "NET YQ==  ",
	} {
		var o Output
		err := o.parse(line)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%q: err = %v, want a *ParseError", line, err)
		}
	}
}

// FuzzParseLine feeds arbitrary helper output lines to the parser: it must
// never panic, must report every rejection as a *ParseError, and must add
// exactly one item for every line it accepts. The base64 fields it decodes
// must round-trip.
func FuzzParseLine(f *testing.F) {
	for _, seed := range []string{
		"NET P09UUjp4Lg==", "MSG aGk= ENC", "MSG = PLAIN", "TLV 8 AAAAAQ==",
		"EVT GONE_SECURE 0000ABCD", "EVT GONE_INSECURE", "EVT STILL_SECURE 0",
		"EVT SMP ASK_FOR_ANSWER 25 cT8=", "EVT MSG RCVDMSG_UNENCRYPTED aGk= 0",
		"EVT SYMKEY 7 = " + string(bytes.Repeat([]byte("00"), 32)),
		"EVT NEW_FINGERPRINT 0123456789ABCDEF0123456789ABCDEF01234567",
		"EVT CREATE_PRIVKEY", "FPR A - 0", "INSTAG 00000100", "NET YQ", "TLV x y",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var o Output
		err := o.parse(line)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("%q: error %v is not a *ParseError", line, err)
			}
			return
		}
		n := len(o.Net) + len(o.Messages) + len(o.TLVs) + len(o.Events) + len(o.results)
		if n != 1 {
			t.Fatalf("%q added %d items", line, n)
		}
		for _, b := range o.Net {
			var o2 Output
			if err := o2.parse("NET " + enc(b)); err != nil || !bytes.Equal(o2.Net[0], b) {
				t.Fatalf("NET %q does not round-trip: %v", b, err)
			}
		}
	})
}
