package esession

import (
	"slices"

	"github.com/balcony-im/balcony/esession/form"
)

// This file is the XEP-0155 "logging" field and its older "otr" spelling,
// negotiated from the user's XEP-0136 OTR preference (XEP-0136 §9.1).

// Values of the logging field, as Params.Logging reports the agreed one.
const (
	LoggingMay     = "may"     // either party may store the session
	LoggingMustNot = "mustnot" // neither party may store anything of it
)

// Values of the XEP-0155 "presence" field (temporary presence sharing).
const (
	PresenceMay     = "may"
	PresenceMustNot = "mustnot"
)

// OTRMode is a user's XEP-0136 OTR preference (§3.2.1.3): how much the
// user wants sessions to be off the record, that is not logged.
type OTRMode int

// OTR preferences, from "never off the record" to "always".
const (
	OTRForbid  OTRMode = iota // communications MUST NOT be off the record
	OTROppose                 // SHOULD NOT be, even if requested
	OTRConcede                // MAY be, if the other party asks
	OTRApprove                // the user must approve off-the-record communication
	OTRPrefer                 // SHOULD be off the record if possible
	OTRRequire                // MUST be off the record
)

// offered returns the logging values an initiator offers, in order of
// preference (XEP-0136 §9.1, first table).
func (m OTRMode) offered() []string {
	switch m {
	case OTRRequire:
		return []string{LoggingMustNot}
	case OTRPrefer, OTRApprove:
		return []string{LoggingMustNot, LoggingMay}
	case OTRConcede, OTROppose:
		return []string{LoggingMay, LoggingMustNot}
	}
	return []string{LoggingMay}
}

// answer returns the logging value a responder picks from the
// initiator's options (XEP-0136 §9.1, second table), or false when the
// negotiation must fail.
func (m OTRMode) answer(opts []string) (string, bool) {
	has := func(v string) bool { return slices.Contains(opts, v) }
	switch m {
	case OTRRequire:
		return LoggingMustNot, has(LoggingMustNot)
	case OTRPrefer:
		if has(LoggingMustNot) {
			return LoggingMustNot, true
		}
	case OTRApprove, OTRConcede:
		if len(opts) > 0 && (opts[0] == LoggingMustNot || opts[0] == LoggingMay) {
			return opts[0], true
		}
	case OTROppose:
		if len(opts) == 1 && opts[0] == LoggingMustNot {
			return LoggingMustNot, true
		}
	}
	return LoggingMay, has(LoggingMay)
}

// loggingOptions returns the logging options of a request in "may" and
// "mustnot" terms, and the field that carried them: "logging" (XEP-0155)
// or the older "otr" (true means mustnot).
func loggingOptions(f *form.Form) ([]string, string) {
	if fl := f.Field("logging"); fl != nil {
		return optionsOf(fl), "logging"
	}
	if fl := f.Field("otr"); fl != nil {
		var out []string
		for _, v := range optionsOf(fl) {
			switch v {
			case "true", "1":
				out = append(out, LoggingMustNot)
			case "false", "0":
				out = append(out, LoggingMay)
			}
		}
		return out, "otr"
	}
	return nil, ""
}

// normalLogging returns the logging value of an answer in may/mustnot
// terms, or "".
func normalLogging(f *form.Form) string {
	if v := f.Value("logging"); v != "" {
		return v
	}
	switch f.Value("otr") {
	case "true", "1":
		return LoggingMustNot
	case "false", "0":
		return LoggingMay
	}
	return ""
}

// loggingValue spells a may/mustnot value for the given field.
func loggingValue(field, v string) string {
	if field == "otr" {
		if v == LoggingMustNot {
			return "true"
		}
		return "false"
	}
	return v
}

// chooseLogging picks the answer to a request's logging options.
func (s *Session) chooseLogging(opts []string) (string, bool) { return s.cfg.otr.answer(opts) }

// optionsOf returns a field's options, or its values if it has none (some
// requests list a list field's choices as values).
func optionsOf(fl *form.Field) []string {
	if fl == nil {
		return nil
	}
	if len(fl.Options) > 0 {
		return fl.OptionValues()
	}
	return fl.Values
}
