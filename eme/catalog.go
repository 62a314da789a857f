package eme

import (
	"sync"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"
)

// Message keys. The English text is the key in the catalogue.
const (
	keyUnspecified        = "This message was encrypted with %s and could not be decrypted."
	keyNotSupported       = "This message was encrypted with %s and could not be decrypted: Balcony does not support this mechanism."
	keyNotEnabled         = "This message was encrypted with %s and could not be decrypted: this mechanism is not enabled."
	keyNoSession          = "This message was encrypted with %s and could not be decrypted: there is no encrypted session with this contact."
	keyNoKey              = "This message was encrypted with %s and could not be decrypted: no key on this device can decrypt it."
	keyVerificationFailed = "This message was encrypted with %s and could not be decrypted: its signature or integrity check failed."
	keyMalformed          = "This message was encrypted with %s and could not be decrypted: it is malformed."
	keyDisagreement       = "This message carries contradictory encryption markers (%s) and was not displayed."
	keySessionRequested   = "Your contact wants to start an encrypted session with %s."
	keyUnreadable         = "This message could not be read: it is malformed or too large."
	keyForgedCopy         = "A message claiming to be a copy of your own conversation came from %s and was ignored."
	keyMalformedCopy      = "A malformed copy of a message (carbon) was ignored."
	keyInvalidSender      = "A message with an invalid sender address could not be read."
	keyHintEnable         = "To enable it, run: %s"
	keyHintSession        = "To start a session, run: %s"
	keyHintVerify         = "To verify, run: %s"
	keyHintAnswer         = "To answer, run: %s"
	keyHintAccept         = "To accept, run: %s"
	keyHintEnd            = "To end it, run: %s"
	keyDetail             = "Details: %s"
	keyUnknownNamespace   = "an unknown mechanism (%s)"
	keyUnknown            = "an unknown mechanism"
)

// The mechanism is always inserted after the same preposition ("with",
// "mit" + dative, "avec", "con", "с помощью" + genitive), so the phrases
// for an unknown mechanism are declined to fit every sentence.
var translations = map[language.Tag]map[string]string{
	language.English: {
		keyForgedCopy:         keyForgedCopy,
		keyMalformedCopy:      keyMalformedCopy,
		keyInvalidSender:      keyInvalidSender,
		keyUnspecified:        keyUnspecified,
		keyNotSupported:       keyNotSupported,
		keyNotEnabled:         keyNotEnabled,
		keyNoSession:          keyNoSession,
		keyNoKey:              keyNoKey,
		keyVerificationFailed: keyVerificationFailed,
		keyMalformed:          keyMalformed,
		keyDisagreement:       keyDisagreement,
		keySessionRequested:   keySessionRequested,
		keyUnreadable:         keyUnreadable,
		keyHintEnable:         keyHintEnable,
		keyHintSession:        keyHintSession,
		keyHintVerify:         keyHintVerify,
		keyHintAnswer:         keyHintAnswer,
		keyHintAccept:         keyHintAccept,
		keyHintEnd:            keyHintEnd,
		keyDetail:             keyDetail,
		keyUnknownNamespace:   keyUnknownNamespace,
		keyUnknown:            keyUnknown,
	},
	language.German: {
		keyForgedCopy:         "Eine Nachricht, die vorgibt, eine Kopie Ihrer eigenen Unterhaltung zu sein, kam von %s und wurde ignoriert.",
		keyMalformedCopy:      "Eine fehlerhafte Kopie einer Nachricht (Carbon) wurde ignoriert.",
		keyInvalidSender:      "Eine Nachricht mit ungültiger Absenderadresse konnte nicht gelesen werden.",
		keyUnspecified:        "Diese Nachricht wurde mit %s verschlüsselt und konnte nicht entschlüsselt werden.",
		keyNotSupported:       "Diese Nachricht wurde mit %s verschlüsselt und konnte nicht entschlüsselt werden: Balcony unterstützt dieses Verfahren nicht.",
		keyNotEnabled:         "Diese Nachricht wurde mit %s verschlüsselt und konnte nicht entschlüsselt werden: Dieses Verfahren ist nicht aktiviert.",
		keyNoSession:          "Diese Nachricht wurde mit %s verschlüsselt und konnte nicht entschlüsselt werden: Es besteht keine verschlüsselte Sitzung mit diesem Kontakt.",
		keyNoKey:              "Diese Nachricht wurde mit %s verschlüsselt und konnte nicht entschlüsselt werden: Kein Schlüssel auf diesem Gerät kann sie entschlüsseln.",
		keyVerificationFailed: "Diese Nachricht wurde mit %s verschlüsselt und konnte nicht entschlüsselt werden: Die Prüfung ihrer Signatur oder Integrität ist fehlgeschlagen.",
		keyMalformed:          "Diese Nachricht wurde mit %s verschlüsselt und konnte nicht entschlüsselt werden: Sie ist fehlerhaft aufgebaut.",
		keyDisagreement:       "Diese Nachricht enthält widersprüchliche Angaben zur Verschlüsselung (%s) und wurde nicht angezeigt.",
		keySessionRequested:   "Ihr Kontakt möchte eine verschlüsselte Sitzung mit %s beginnen.",
		keyUnreadable:         "Diese Nachricht konnte nicht gelesen werden: Sie ist fehlerhaft aufgebaut oder zu groß.",
		keyHintEnable:         "Zum Aktivieren ausführen: %s",
		keyHintSession:        "Zum Beginnen einer Sitzung ausführen: %s",
		keyHintVerify:         "Zum Überprüfen ausführen: %s",
		keyHintAnswer:         "Zum Antworten ausführen: %s",
		keyHintAccept:         "Zum Annehmen ausführen: %s",
		keyHintEnd:            "Zum Beenden ausführen: %s",
		keyDetail:             "Einzelheiten: %s",
		keyUnknownNamespace:   "einem unbekannten Verfahren (%s)",
		keyUnknown:            "einem unbekannten Verfahren",
	},
	language.French: {
		keyForgedCopy:         "Un message prétendant être une copie de votre propre conversation est venu de %s et a été ignoré.",
		keyMalformedCopy:      "Une copie mal formée d’un message (carbon) a été ignorée.",
		keyInvalidSender:      "Un message avec une adresse d’expéditeur invalide n’a pas pu être lu.",
		keyUnspecified:        "Ce message a été chiffré avec %s et n’a pas pu être déchiffré.",
		keyNotSupported:       "Ce message a été chiffré avec %s et n’a pas pu être déchiffré : Balcony ne prend pas en charge ce mécanisme.",
		keyNotEnabled:         "Ce message a été chiffré avec %s et n’a pas pu être déchiffré : ce mécanisme n’est pas activé.",
		keyNoSession:          "Ce message a été chiffré avec %s et n’a pas pu être déchiffré : aucune session chiffrée n’est établie avec ce contact.",
		keyNoKey:              "Ce message a été chiffré avec %s et n’a pas pu être déchiffré : aucune clé de cet appareil ne permet de le déchiffrer.",
		keyVerificationFailed: "Ce message a été chiffré avec %s et n’a pas pu être déchiffré : la vérification de sa signature ou de son intégrité a échoué.",
		keyMalformed:          "Ce message a été chiffré avec %s et n’a pas pu être déchiffré : il est mal formé.",
		keyDisagreement:       "Ce message comporte des indications de chiffrement contradictoires (%s) et n’a pas été affiché.",
		keySessionRequested:   "Votre contact souhaite établir une session chiffrée avec %s.",
		keyUnreadable:         "Ce message n’a pas pu être lu : il est mal formé ou trop volumineux.",
		keyHintEnable:         "Pour l’activer, exécutez : %s",
		keyHintSession:        "Pour établir une session, exécutez : %s",
		keyHintVerify:         "Pour vérifier, exécutez : %s",
		keyHintAnswer:         "Pour répondre, exécutez : %s",
		keyHintAccept:         "Pour accepter, exécutez : %s",
		keyHintEnd:            "Pour y mettre fin, exécutez : %s",
		keyDetail:             "Détails : %s",
		keyUnknownNamespace:   "un mécanisme inconnu (%s)",
		keyUnknown:            "un mécanisme inconnu",
	},
	language.Spanish: {
		keyForgedCopy:         "Un mensaje que afirma ser una copia de tu propia conversación llegó de %s y se ignoró.",
		keyMalformedCopy:      "Se ignoró una copia mal formada de un mensaje (carbon).",
		keyInvalidSender:      "No se pudo leer un mensaje con una dirección de remitente no válida.",
		keyUnspecified:        "Este mensaje se cifró con %s y no se pudo descifrar.",
		keyNotSupported:       "Este mensaje se cifró con %s y no se pudo descifrar: Balcony no admite este mecanismo.",
		keyNotEnabled:         "Este mensaje se cifró con %s y no se pudo descifrar: este mecanismo no está activado.",
		keyNoSession:          "Este mensaje se cifró con %s y no se pudo descifrar: no hay ninguna sesión cifrada con este contacto.",
		keyNoKey:              "Este mensaje se cifró con %s y no se pudo descifrar: ninguna clave de este dispositivo puede descifrarlo.",
		keyVerificationFailed: "Este mensaje se cifró con %s y no se pudo descifrar: falló la verificación de su firma o de su integridad.",
		keyMalformed:          "Este mensaje se cifró con %s y no se pudo descifrar: está mal formado.",
		keyDisagreement:       "Este mensaje contiene indicaciones de cifrado contradictorias (%s) y no se ha mostrado.",
		keySessionRequested:   "Tu contacto quiere iniciar una sesión cifrada con %s.",
		keyUnreadable:         "Este mensaje no se pudo leer: está mal formado o es demasiado grande.",
		keyHintEnable:         "Para activarlo, ejecuta: %s",
		keyHintSession:        "Para iniciar una sesión, ejecuta: %s",
		keyHintVerify:         "Para verificar, ejecuta: %s",
		keyHintAnswer:         "Para responder, ejecuta: %s",
		keyHintAccept:         "Para aceptar, ejecuta: %s",
		keyHintEnd:            "Para terminarla, ejecuta: %s",
		keyDetail:             "Detalles: %s",
		keyUnknownNamespace:   "un mecanismo desconocido (%s)",
		keyUnknown:            "un mecanismo desconocido",
	},
	language.Russian: {
		keyForgedCopy:         "Сообщение, выдающее себя за копию вашей собственной переписки, пришло от %s и было проигнорировано.",
		keyMalformedCopy:      "Повреждённая копия сообщения (carbon) была проигнорирована.",
		keyInvalidSender:      "Не удалось прочитать сообщение с недопустимым адресом отправителя.",
		keyUnspecified:        "Это сообщение зашифровано с помощью %s, и его не удалось расшифровать.",
		keyNotSupported:       "Это сообщение зашифровано с помощью %s, и его не удалось расшифровать: Balcony не поддерживает этот механизм.",
		keyNotEnabled:         "Это сообщение зашифровано с помощью %s, и его не удалось расшифровать: этот механизм не включён.",
		keyNoSession:          "Это сообщение зашифровано с помощью %s, и его не удалось расшифровать: с этим контактом нет зашифрованного сеанса.",
		keyNoKey:              "Это сообщение зашифровано с помощью %s, и его не удалось расшифровать: ни один ключ на этом устройстве не подходит для расшифровки.",
		keyVerificationFailed: "Это сообщение зашифровано с помощью %s, и его не удалось расшифровать: проверка подписи или целостности не пройдена.",
		keyMalformed:          "Это сообщение зашифровано с помощью %s, и его не удалось расшифровать: оно имеет неверный формат.",
		keyDisagreement:       "Это сообщение содержит противоречивые сведения о шифровании (%s) и не было показано.",
		keySessionRequested:   "Ваш контакт хочет начать зашифрованный сеанс с помощью %s.",
		keyUnreadable:         "Это сообщение не удалось прочитать: оно имеет неверный формат или слишком велико.",
		keyHintEnable:         "Чтобы включить его, выполните: %s",
		keyHintSession:        "Чтобы начать сеанс, выполните: %s",
		keyHintVerify:         "Чтобы проверить, выполните: %s",
		keyHintAnswer:         "Чтобы ответить, выполните: %s",
		keyHintAccept:         "Чтобы принять, выполните: %s",
		keyHintEnd:            "Чтобы завершить, выполните: %s",
		keyDetail:             "Подробности: %s",
		keyUnknownNamespace:   "неизвестного механизма (%s)",
		keyUnknown:            "неизвестного механизма",
	},
}

// supported lists the catalogue's languages, English first: it is the
// fallback.
var supported = []language.Tag{language.English, language.German, language.French, language.Spanish, language.Russian}

// Languages returns the languages notices are translated into, English
// (the fallback) first.
func Languages() []language.Tag {
	return append([]language.Tag(nil), supported...)
}

var notices = sync.OnceValues(func() (*catalog.Builder, language.Matcher) {
	b := catalog.NewBuilder(catalog.Fallback(language.English))
	for _, tag := range supported {
		for key, msg := range translations[tag] {
			if err := b.SetString(tag, key, msg); err != nil {
				panic("eme: building notice catalogue: " + err.Error())
			}
		}
	}
	return b, language.NewMatcher(supported)
})

// printer returns a printer for the supported language closest to lang.
func printer(lang language.Tag) *message.Printer {
	cat, m := notices()
	_, i, _ := m.Match(lang)
	return message.NewPrinter(supported[i], message.Catalog(cat))
}
