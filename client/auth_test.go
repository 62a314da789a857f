package client

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"mellium.im/sasl"
)

func names(ms []sasl.Mechanism) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name)
	}
	return strings.Join(s, ",")
}

// The channel-binding rule of auth.go, case by case.
func TestChooseMechanisms(t *testing.T) {
	all := []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha256, sasl.ScramSha1Plus, sasl.ScramSha1}
	withPlus := []string{"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "PLAIN"}
	noPlus := []string{"SCRAM-SHA-256", "PLAIN"}
	const v12, v13 = tls.VersionTLS12, tls.VersionTLS13
	for _, tc := range []struct {
		name       string
		offered    []string
		version    uint16
		advertised []string
		announced  bool
		want       string // mechanisms, or "retry-tls12", or "error"
		binding    string
	}{
		{"no PLUS offered (Prosody 0.12, TLS 1.3)", noPlus, v13, nil, false, names(all), ""},
		{"PLUS without XEP-0440 on TLS 1.2: tls-unique", withPlus, v12, nil, false, "SCRAM-SHA-256-PLUS", BindingTLSUnique},
		{"PLUS without XEP-0440 on TLS 1.3 (ejabberd 23.01): TLS 1.2", withPlus, v13, nil, false, "retry-tls12", ""},
		{"XEP-0440 lists tls-exporter on TLS 1.3", withPlus, v13, []string{"tls-server-end-point", "tls-exporter"}, true, "SCRAM-SHA-256-PLUS", BindingTLSExporter},
		{"XEP-0440 lists tls-unique on TLS 1.2", withPlus, v12, []string{"tls-unique", "tls-exporter"}, true, "SCRAM-SHA-256-PLUS", BindingTLSUnique},
		{"XEP-0440 lists only tls-unique on TLS 1.3", withPlus, v13, []string{"tls-unique"}, true, "retry-tls12", ""},
		{"XEP-0440 lists only tls-exporter on TLS 1.2", withPlus, v12, []string{"tls-exporter"}, true, "error", ""},
		{"XEP-0440 lists only types Balcony lacks", withPlus, v13, []string{"tls-server-end-point"}, true, "SCRAM-SHA-256", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, binding, err := chooseMechanisms(all, tc.offered, tc.version, tc.advertised, tc.announced)
			switch tc.want {
			case "retry-tls12":
				if !errors.Is(err, errRetryTLS12) {
					t.Fatalf("got %s %v, want a TLS 1.2 retry", names(got), err)
				}
			case "error":
				if err == nil || errors.Is(err, errRetryTLS12) {
					t.Fatalf("got %s %v, want an error", names(got), err)
				}
			default:
				if err != nil || names(got) != tc.want || binding != tc.binding {
					t.Fatalf("got %s %q %v, want %s %q", names(got), binding, err, tc.want, tc.binding)
				}
			}
		})
	}
}

func TestAuthErrorText(t *testing.T) {
	e := &AuthError{Condition: "not-authorized", Text: "Invalid channel binding", Mechanism: "SCRAM-SHA-256-PLUS", ChannelBinding: BindingTLSUnique}
	if !e.BindingSuspect() || !strings.Contains(e.Error(), "bound with tls-unique") {
		t.Fatalf("%v %v", e, e.BindingSuspect())
	}
	if (&AuthError{Condition: "not-authorized", Mechanism: "SCRAM-SHA-256-PLUS", ChannelBinding: BindingTLSUnique}).BindingSuspect() {
		t.Fatal("a plain not-authorized blamed on the binding")
	}
	if (&AuthError{Condition: "temporary-auth-failure"}).BindingSuspect() {
		t.Fatal("an unbound login blamed on the binding")
	}
}
