package main

import (
	"encoding/base64"
	"errors"
	"strings"

	"golang.org/x/text/language"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/esession"
)

// hintCommand turns what the library suggests (an eme.Hint: an action on a
// mechanism and a peer) into the balcony command that does it, or into
// the chat window's slash command when slash is set; fpr is the key the
// event is about, if any. It returns "" when balcony has no command for
// the hint.
func hintCommand(h eme.Hint, fpr string, slash bool) string {
	peer := h.Peer
	if peer == "" {
		peer = "JID"
	}
	type key struct {
		a  eme.Action
		ns string
	}
	cli := map[key]string{
		{eme.ActionEnable, eme.OX}:             "balcony ox keygen",
		{eme.ActionEnable, eme.OTR}:            "balcony otr start " + peer,
		{eme.ActionEnable, eme.ESession}:       "balcony esession start " + peer,
		{eme.ActionStartSession, eme.OTR}:      "balcony otr start " + peer,
		{eme.ActionStartSession, eme.ESession}: "balcony esession start " + peer,
		{eme.ActionVerify, eme.OTR}:            "balcony otr smp " + peer,
		{eme.ActionVerify, eme.ESession}:       "balcony esession sas " + peer,
		{eme.ActionAnswer, eme.OTR}:            "balcony otr smp-answer --secret-file FILE " + peer,
		{eme.ActionAccept, eme.ESession}:       "balcony esession accept " + peer,
		{eme.ActionEnd, eme.OTR}:               "balcony otr end " + peer,
		{eme.ActionVerify, eme.OMEMO2}:         "balcony omemo devices " + peer,
		{eme.ActionVerify, eme.OMEMO0}:         "balcony omemo devices " + peer,
	}
	if fpr != "" {
		cli[key{eme.ActionVerify, eme.OX}] = "balcony trust --mechanism ox " + peer + " " + shortFingerprint(fpr) + " verified"
		// The whole fingerprint: the one to compare with the contact.
		for _, ns := range []string{eme.OMEMO2, eme.OMEMO0} {
			cli[key{eme.ActionVerify, ns}] = "balcony omemo trust " + peer + " " + strings.ReplaceAll(fpr, " ", "")
		}
	}
	// An Encrypted Sessions event names either a SAS or a public key
	// (XEP-0116): a key is verified with balcony trust.
	esKey := isESessionKey(fpr)
	if esKey {
		cli[key{eme.ActionVerify, eme.ESession}] = "balcony trust --mechanism esession " + esession.Bare(peer) + " " + fpr + " verified"
	}
	if slash {
		chat := map[key]string{
			{eme.ActionEnable, eme.OTR}:            "/otr start",
			{eme.ActionEnable, eme.ESession}:       "/esession start",
			{eme.ActionStartSession, eme.OTR}:      "/otr start",
			{eme.ActionStartSession, eme.ESession}: "/esession start",
			{eme.ActionVerify, eme.OTR}:            "/otr smp",
			{eme.ActionVerify, eme.ESession}:       "/esession sas",
			{eme.ActionAnswer, eme.OTR}:            "/otr answer",
			{eme.ActionAccept, eme.ESession}:       "/esession accept",
			{eme.ActionEnd, eme.OTR}:               "/otr end",
			{eme.ActionVerify, eme.OMEMO2}:         "/omemo devices",
			{eme.ActionVerify, eme.OMEMO0}:         "/omemo devices",
		}
		if fpr != "" {
			for _, ns := range []string{eme.OMEMO2, eme.OMEMO0} {
				chat[key{eme.ActionVerify, ns}] = "/omemo trust " + strings.ReplaceAll(fpr, " ", "")
			}
		}
		if esKey {
			chat[key{eme.ActionVerify, eme.ESession}] = "/trust " + fpr + " verified"
		}
		if c, ok := chat[key{h.Action, h.Mechanism}]; ok {
			return c
		}
	}
	return cli[key{h.Action, h.Mechanism}]
}

// isESessionKey reports whether fpr is the fingerprint of an Encrypted
// Sessions public key (base64 SHA-256) rather than a SAS.
func isESessionKey(fpr string) bool {
	if len(fpr) != 44 || fpr[43] != '=' {
		return false
	}
	_, err := base64.StdEncoding.DecodeString(fpr)
	return err == nil
}

// hintText is the sentence that tells the user what to do about h, in
// lang, or "".
func hintText(h eme.Hint, fpr string, slash bool, lang string) string {
	return h.Text(language.Make(lang), hintCommand(h, fpr, slash))
}

// withLibraryHint adds the command for a library error that says what
// would help (a mechanism that is not enabled) to err.
func withLibraryHint(err error, lang string) error {
	if ne, ok := errors.AsType[*client.NotEnabledError](err); ok {
		if t := hintText(ne.Hint, "", false, lang); t != "" {
			return withHint(err, t)
		}
	}
	return err
}
