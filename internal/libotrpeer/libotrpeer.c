//go:build ignore

/*
 * libotrpeer: a libotr 4.1.x peer for Balcony's OTR interoperability tests.
 *
 * It wraps otrl_message_sending and otrl_message_receiving behind a
 * synchronous line protocol on stdin/stdout, so that a Go test can drive a
 * real libotr conversation without a network and without sleeping. The
 * protocol is documented in libotrpeer.go, which is the only intended
 * client.
 *
 * Build:
 *   gcc -O2 -o libotrpeer libotrpeer.c $(pkg-config --cflags --libs libotr) -lgcrypt
 *
 * Modes:
 *   libotrpeer                                line protocol on stdin/stdout
 *   libotrpeer -genkey FILE ACCOUNT PROTOCOL  write a new DSA key with libotr
 *   libotrpeer -bench ake|data|ratchet [-n N] [-keys FILE] [-size BYTES]
 *                                             two in-process libotr peers,
 *                                             prints "BENCH name n ns/op"
 *
 * Every request line gets zero or more output lines and then exactly one
 * line that is "OK" or starts with "ERR ". Fields that may hold arbitrary
 * bytes are standard base64; "=" stands for the empty string and "-" for
 * an absent value.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gcrypt.h>

#include <libotr/proto.h>
#include <libotr/context.h>
#include <libotr/instag.h>
#include <libotr/message.h>
#include <libotr/privkey.h>
#include <libotr/tlv.h>
#include <libotr/userstate.h>

/* ---------------------------------------------------------------------- */
/* base64 (RFC 4648 standard alphabet, padded, strict decoding)            */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* b64enc returns a newly allocated encoding of buf; "=" if len is 0. */
static char *b64enc(const unsigned char *buf, size_t len)
{
    size_t outlen = 4 * ((len + 2) / 3);
    char *out, *p;
    size_t i;

    if (len == 0) {
	return strdup("=");
    }
    out = malloc(outlen + 1);
    if (!out) {
	return NULL;
    }
    p = out;
    for (i = 0; i + 2 < len; i += 3) {
	uint32_t v = ((uint32_t)buf[i] << 16) | ((uint32_t)buf[i+1] << 8) |
	    buf[i+2];
	*p++ = b64chars[(v >> 18) & 63];
	*p++ = b64chars[(v >> 12) & 63];
	*p++ = b64chars[(v >> 6) & 63];
	*p++ = b64chars[v & 63];
    }
    if (len - i == 1) {
	uint32_t v = (uint32_t)buf[i] << 16;
	*p++ = b64chars[(v >> 18) & 63];
	*p++ = b64chars[(v >> 12) & 63];
	*p++ = '=';
	*p++ = '=';
    } else if (len - i == 2) {
	uint32_t v = ((uint32_t)buf[i] << 16) | ((uint32_t)buf[i+1] << 8);
	*p++ = b64chars[(v >> 18) & 63];
	*p++ = b64chars[(v >> 12) & 63];
	*p++ = b64chars[(v >> 6) & 63];
	*p++ = '=';
    }
    *p = '\0';
    return out;
}

static int b64val(char c)
{
    const char *p;
    if (c == '\0') {
	return -1;
    }
    p = strchr(b64chars, c);
    return p ? (int)(p - b64chars) : -1;
}

/* b64dec decodes s into a newly allocated, NUL-terminated buffer and
 * stores its length (without the terminator) in *lenp. It returns NULL
 * for malformed input. "=" decodes to the empty string. */
static unsigned char *b64dec(const char *s, size_t *lenp)
{
    size_t n = strlen(s), i, o = 0;
    unsigned char *out;

    if (strcmp(s, "=") == 0) {
	out = malloc(1);
	if (out) {
	    out[0] = '\0';
	    *lenp = 0;
	}
	return out;
    }
    if (n == 0 || n % 4 != 0) {
	return NULL;
    }
    out = malloc(n / 4 * 3 + 1);
    if (!out) {
	return NULL;
    }
    for (i = 0; i < n; i += 4) {
	int a = b64val(s[i]), b = b64val(s[i+1]);
	int c = s[i+2] == '=' ? -2 : b64val(s[i+2]);
	int d = s[i+3] == '=' ? -2 : b64val(s[i+3]);
	int last = (i + 4 == n);
	if (a < 0 || b < 0 || c == -1 || d == -1 ||
		((c == -2 || d == -2) && !last) || (c == -2 && d != -2)) {
	    free(out);
	    return NULL;
	}
	out[o++] = (unsigned char)((a << 2) | (b >> 4));
	if (c >= 0) {
	    out[o++] = (unsigned char)(((b & 15) << 4) | (c >> 2));
	    if (d >= 0) {
		out[o++] = (unsigned char)(((c & 3) << 6) | d);
	    } else if ((c & 3) != 0) {
		free(out);
		return NULL;
	    }
	} else if ((b & 15) != 0) {
	    free(out);
	    return NULL;
	}
    }
    out[o] = '\0';
    *lenp = o;
    return out;
}

static void hex(char *dst, const unsigned char *src, size_t n)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t i;
    for (i = 0; i < n; i++) {
	dst[2*i] = digits[src[i] >> 4];
	dst[2*i+1] = digits[src[i] & 15];
    }
    dst[2*n] = '\0';
}

/* ---------------------------------------------------------------------- */
/* A peer: one OtrlUserState talking to one buddy.                         */

struct queue {
    char **items;
    size_t head, len, cap;
};

struct peer {
    OtrlUserState us;
    char account[256];
    char protocol[64];
    char buddy[256];
    OtrlPolicy policy;
    int mms;
    char *instag_path;     /* where create_instag writes; NULL = tmpfile */
    FILE *out;             /* line-protocol output, or NULL in bench mode */
    struct queue *outbox;  /* bench mode: where injected messages go */
    int secure_events;     /* gone_secure + still_secure count */
};

static void emit(struct peer *p, const char *fmt, ...)
{
    va_list ap;
    if (!p->out) {
	return;
    }
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
}

/* emit_b64 writes "<prefix> <base64 of buf>[ <suffix>]". */
static void emit_b64(struct peer *p, const char *prefix,
	const unsigned char *buf, size_t len, const char *suffix)
{
    char *enc;
    if (!p->out) {
	return;
    }
    enc = b64enc(buf, len);
    if (!enc) {
	fprintf(stderr, "libotrpeer: out of memory\n");
	exit(2);
    }
    if (suffix) {
	emit(p, "%s %s %s", prefix, enc, suffix);
    } else {
	emit(p, "%s %s", prefix, enc);
    }
    free(enc);
}

static void queue_push(struct queue *q, const char *msg)
{
    if (q->head + q->len == q->cap) {
	if (q->head > 0) {
	    memmove(q->items, q->items + q->head, q->len * sizeof(char *));
	    q->head = 0;
	} else {
	    q->cap = q->cap ? 2 * q->cap : 16;
	    q->items = realloc(q->items, q->cap * sizeof(char *));
	    if (!q->items) {
		fprintf(stderr, "libotrpeer: out of memory\n");
		exit(2);
	    }
	}
    }
    q->items[q->head + q->len] = strdup(msg);
    q->len++;
}

static char *queue_pop(struct queue *q)
{
    char *m;
    if (q->len == 0) {
	return NULL;
    }
    m = q->items[q->head];
    q->head++;
    q->len--;
    if (q->len == 0) {
	q->head = 0;
    }
    return m;
}

static void queue_clear(struct queue *q)
{
    char *m;
    while ((m = queue_pop(q)) != NULL) {
	free(m);
    }
}

/* ---------------------------------------------------------------------- */
/* libotr callbacks                                                        */

static const char *smp_event_name(OtrlSMPEvent e)
{
    switch (e) {
    case OTRL_SMPEVENT_NONE: return "NONE";
    case OTRL_SMPEVENT_ERROR: return "ERROR";
    case OTRL_SMPEVENT_ABORT: return "ABORT";
    case OTRL_SMPEVENT_CHEATED: return "CHEATED";
    case OTRL_SMPEVENT_ASK_FOR_ANSWER: return "ASK_FOR_ANSWER";
    case OTRL_SMPEVENT_ASK_FOR_SECRET: return "ASK_FOR_SECRET";
    case OTRL_SMPEVENT_IN_PROGRESS: return "IN_PROGRESS";
    case OTRL_SMPEVENT_SUCCESS: return "SUCCESS";
    case OTRL_SMPEVENT_FAILURE: return "FAILURE";
    }
    return "UNKNOWN";
}

static const char *msg_event_name(OtrlMessageEvent e)
{
    switch (e) {
    case OTRL_MSGEVENT_NONE: return "NONE";
    case OTRL_MSGEVENT_ENCRYPTION_REQUIRED: return "ENCRYPTION_REQUIRED";
    case OTRL_MSGEVENT_ENCRYPTION_ERROR: return "ENCRYPTION_ERROR";
    case OTRL_MSGEVENT_CONNECTION_ENDED: return "CONNECTION_ENDED";
    case OTRL_MSGEVENT_SETUP_ERROR: return "SETUP_ERROR";
    case OTRL_MSGEVENT_MSG_REFLECTED: return "MSG_REFLECTED";
    case OTRL_MSGEVENT_MSG_RESENT: return "MSG_RESENT";
    case OTRL_MSGEVENT_RCVDMSG_NOT_IN_PRIVATE: return "RCVDMSG_NOT_IN_PRIVATE";
    case OTRL_MSGEVENT_RCVDMSG_UNREADABLE: return "RCVDMSG_UNREADABLE";
    case OTRL_MSGEVENT_RCVDMSG_MALFORMED: return "RCVDMSG_MALFORMED";
    case OTRL_MSGEVENT_LOG_HEARTBEAT_RCVD: return "LOG_HEARTBEAT_RCVD";
    case OTRL_MSGEVENT_LOG_HEARTBEAT_SENT: return "LOG_HEARTBEAT_SENT";
    case OTRL_MSGEVENT_RCVDMSG_GENERAL_ERR: return "RCVDMSG_GENERAL_ERR";
    case OTRL_MSGEVENT_RCVDMSG_UNENCRYPTED: return "RCVDMSG_UNENCRYPTED";
    case OTRL_MSGEVENT_RCVDMSG_UNRECOGNIZED: return "RCVDMSG_UNRECOGNIZED";
    case OTRL_MSGEVENT_RCVDMSG_FOR_OTHER_INSTANCE:
	return "RCVDMSG_FOR_OTHER_INSTANCE";
    }
    return "UNKNOWN";
}

static OtrlPolicy cb_policy(void *opdata, ConnContext *context)
{
    (void)context;
    return ((struct peer *)opdata)->policy;
}

static void cb_create_privkey(void *opdata, const char *accountname,
	const char *protocol)
{
    /* Key generation is slow; the driver loads keys up front. Report that
     * libotr wanted one so a test can tell why an AKE went nowhere. */
    (void)accountname;
    (void)protocol;
    emit((struct peer *)opdata, "EVT CREATE_PRIVKEY");
}

static int cb_is_logged_in(void *opdata, const char *accountname,
	const char *protocol, const char *recipient)
{
    (void)opdata; (void)accountname; (void)protocol; (void)recipient;
    return 1;
}

static void cb_inject_message(void *opdata, const char *accountname,
	const char *protocol, const char *recipient, const char *message)
{
    struct peer *p = opdata;
    (void)accountname; (void)protocol; (void)recipient;
    /* libotr injects "" for a message it refuses to send (FINISHED). */
    if (!message || message[0] == '\0') {
	return;
    }
    if (p->outbox) {
	queue_push(p->outbox, message);
	return;
    }
    emit_b64(p, "NET", (const unsigned char *)message, strlen(message), NULL);
}

static void cb_update_context_list(void *opdata)
{
    (void)opdata;
}

static void cb_new_fingerprint(void *opdata, OtrlUserState us,
	const char *accountname, const char *protocol, const char *username,
	unsigned char fingerprint[20])
{
    char h[41];
    (void)us; (void)accountname; (void)protocol; (void)username;
    hex(h, fingerprint, 20);
    emit((struct peer *)opdata, "EVT NEW_FINGERPRINT %s", h);
}

static void cb_write_fingerprints(void *opdata)
{
    (void)opdata;
}

static void cb_gone_secure(void *opdata, ConnContext *context)
{
    struct peer *p = opdata;
    p->secure_events++;
    emit(p, "EVT GONE_SECURE %08X", context->their_instance);
}

static void cb_gone_insecure(void *opdata, ConnContext *context)
{
    (void)context;
    emit((struct peer *)opdata, "EVT GONE_INSECURE");
}

static void cb_still_secure(void *opdata, ConnContext *context, int is_reply)
{
    struct peer *p = opdata;
    (void)context;
    p->secure_events++;
    emit(p, "EVT STILL_SECURE %d", is_reply ? 1 : 0);
}

static int cb_max_message_size(void *opdata, ConnContext *context)
{
    (void)context;
    return ((struct peer *)opdata)->mms;
}

static const char *cb_account_name(void *opdata, const char *account,
	const char *protocol)
{
    (void)opdata; (void)protocol;
    return strdup(account);
}

static void cb_account_name_free(void *opdata, const char *account_name)
{
    (void)opdata;
    free((char *)account_name);
}

static void cb_received_symkey(void *opdata, ConnContext *context,
	unsigned int use, const unsigned char *usedata, size_t usedatalen,
	const unsigned char *symkey)
{
    struct peer *p = opdata;
    char h[2 * OTRL_EXTRAKEY_BYTES + 1];
    char *enc;
    (void)context;
    hex(h, symkey, OTRL_EXTRAKEY_BYTES);
    enc = b64enc(usedata, usedatalen);
    emit(p, "EVT SYMKEY %u %s %s", use, enc ? enc : "-", h);
    free(enc);
}

static const char *cb_otr_error_message(void *opdata, ConnContext *context,
	OtrlErrorCode code)
{
    (void)opdata; (void)context;
    switch (code) {
    case OTRL_ERRCODE_ENCRYPTION_ERROR:
	return strdup("Error occurred encrypting message.");
    case OTRL_ERRCODE_MSG_NOT_IN_PRIVATE:
	return strdup("You sent encrypted data to a peer who wasn't "
		"expecting it.");
    case OTRL_ERRCODE_MSG_UNREADABLE:
	return strdup("You transmitted an unreadable encrypted message.");
    case OTRL_ERRCODE_MSG_MALFORMED:
	return strdup("You transmitted a malformed data message.");
    case OTRL_ERRCODE_NONE:
	break;
    }
    return NULL;
}

static void cb_otr_error_message_free(void *opdata, const char *msg)
{
    (void)opdata;
    free((char *)msg);
}

static void cb_handle_smp_event(void *opdata, OtrlSMPEvent e,
	ConnContext *context, unsigned short progress, char *question)
{
    struct peer *p = opdata;
    char *enc = NULL;
    (void)context;
    if (question) {
	enc = b64enc((const unsigned char *)question, strlen(question));
    }
    emit(p, "EVT SMP %s %u %s", smp_event_name(e), (unsigned)progress,
	    enc ? enc : "-");
    free(enc);
}

static void cb_handle_msg_event(void *opdata, OtrlMessageEvent e,
	ConnContext *context, const char *message, gcry_error_t err)
{
    struct peer *p = opdata;
    char *enc = NULL;
    (void)context;
    if (message) {
	enc = b64enc((const unsigned char *)message, strlen(message));
    }
    emit(p, "EVT MSG %s %s %u", msg_event_name(e), enc ? enc : "-",
	    (unsigned)gcry_err_code(err));
    free(enc);
}

static void cb_create_instag(void *opdata, const char *accountname,
	const char *protocol)
{
    struct peer *p = opdata;
    gcry_error_t err;
    if (p->instag_path) {
	err = otrl_instag_generate(p->us, p->instag_path, accountname,
		protocol);
    } else {
	FILE *f = tmpfile();
	if (!f) {
	    return;
	}
	err = otrl_instag_generate_FILEp(p->us, f, accountname, protocol);
	fclose(f);
    }
    if (err) {
	fprintf(stderr, "libotrpeer: instag: %s\n", gcry_strerror(err));
    }
}

static void cb_timer_control(void *opdata, unsigned int interval)
{
    /* The tests are short; otrl_message_poll can be called with POLL. */
    (void)opdata; (void)interval;
}

static OtrlMessageAppOps ops = {
    cb_policy,
    cb_create_privkey,
    cb_is_logged_in,
    cb_inject_message,
    cb_update_context_list,
    cb_new_fingerprint,
    cb_write_fingerprints,
    cb_gone_secure,
    cb_gone_insecure,
    cb_still_secure,
    cb_max_message_size,
    cb_account_name,
    cb_account_name_free,
    cb_received_symkey,
    cb_otr_error_message,
    cb_otr_error_message_free,
    NULL, /* resent_msg_prefix: libotr's default "[resent]" */
    NULL, /* resent_msg_prefix_free */
    cb_handle_smp_event,
    cb_handle_msg_event,
    cb_create_instag,
    NULL, /* convert_msg */
    NULL, /* convert_free */
    cb_timer_control,
};

/* ---------------------------------------------------------------------- */
/* Operations shared by the line protocol and the benchmarks               */

static void peer_init(struct peer *p, const char *account,
	const char *protocol, const char *buddy)
{
    memset(p, 0, sizeof(*p));
    p->us = otrl_userstate_create();
    snprintf(p->account, sizeof(p->account), "%s", account);
    snprintf(p->protocol, sizeof(p->protocol), "%s", protocol);
    snprintf(p->buddy, sizeof(p->buddy), "%s", buddy);
    p->policy = OTRL_POLICY_DEFAULT;
}

/* best_context is the buddy's instance libotr itself would pick for
 * OTRL_INSTAG_BEST: encrypted first, then trusted, then most recent. */
static ConnContext *best_context(struct peer *p)
{
    return otrl_context_find(p->us, p->buddy, p->account, p->protocol,
	    OTRL_INSTAG_BEST, 0, NULL, NULL, NULL);
}

/* do_send hands plaintext to otrl_message_sending; every message to
 * transmit is injected (OTRL_FRAGMENT_SEND_ALL), except when libotr leaves
 * the message alone, in which case the original is sent as is. */
static gcry_error_t do_send(struct peer *p, const char *text)
{
    char *newmsg = NULL;
    ConnContext *ctx = NULL;
    gcry_error_t err;

    err = otrl_message_sending(p->us, &ops, p, p->account, p->protocol,
	    p->buddy, OTRL_INSTAG_BEST, text, NULL, &newmsg,
	    OTRL_FRAGMENT_SEND_ALL, &ctx, NULL, NULL);
    if (err) {
	otrl_message_free(newmsg);
	return err;
    }
    if (newmsg == NULL) {
	/* Not an OTR matter: the application sends the original. */
	cb_inject_message(p, p->account, p->protocol, p->buddy, text);
    }
    otrl_message_free(newmsg);
    return 0;
}

/* do_recv hands a network message to otrl_message_receiving and reports
 * the plaintext to deliver, if any, and the TLVs. It returns 1 if there is
 * something to deliver and stores it in *plainp (caller frees). */
static int do_recv(struct peer *p, const char *msg, char **plainp,
	int *encryptedp)
{
    char *newmsg = NULL;
    OtrlTLV *tlvs = NULL, *t;
    ConnContext *ctx = NULL;
    int internal;

    *plainp = NULL;
    *encryptedp = 0;
    internal = otrl_message_receiving(p->us, &ops, p, p->account,
	    p->protocol, p->buddy, msg, &newmsg, &tlvs, &ctx, NULL, NULL);
    for (t = tlvs; t; t = t->next) {
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "TLV %u", (unsigned)t->type);
	emit_b64(p, prefix, t->data, t->len, NULL);
    }
    otrl_tlv_free(tlvs);
    if (internal) {
	otrl_message_free(newmsg);
	return 0;
    }
    if (newmsg) {
	/* libotr only rewrites a data message or a tagged plaintext, and
	 * it never delivers plaintext once the conversation is private, so
	 * a rewritten message in a non-plaintext context was encrypted. */
	*encryptedp = ctx && ctx->msgstate != OTRL_MSGSTATE_PLAINTEXT;
	*plainp = newmsg;
    } else {
	*plainp = strdup(msg);
    }
    return 1;
}

static const char *msgstate_name(OtrlMessageState s)
{
    switch (s) {
    case OTRL_MSGSTATE_PLAINTEXT: return "plaintext";
    case OTRL_MSGSTATE_ENCRYPTED: return "encrypted";
    case OTRL_MSGSTATE_FINISHED: return "finished";
    }
    return "unknown";
}

static OtrlInsTag *own_instag(struct peer *p)
{
    OtrlInsTag *t = otrl_instag_find(p->us, p->account, p->protocol);
    if (!t) {
	cb_create_instag(p, p->account, p->protocol);
	t = otrl_instag_find(p->us, p->account, p->protocol);
    }
    return t;
}

/* ---------------------------------------------------------------------- */
/* Line protocol                                                           */

#define MAXARGS 4

/* decode_arg decodes a base64 argument; it refuses embedded NULs when
 * the value goes to libotr as a C string. */
static char *decode_arg(const char *arg, size_t *lenp, int cstring,
	const char **errp)
{
    size_t len = 0;
    unsigned char *buf;
    if (!arg) {
	*errp = "missing argument";
	return NULL;
    }
    buf = b64dec(arg, &len);
    if (!buf) {
	*errp = "bad base64";
	return NULL;
    }
    if (cstring && memchr(buf, '\0', len)) {
	free(buf);
	*errp = "value contains a NUL byte";
	return NULL;
    }
    if (lenp) {
	*lenp = len;
    }
    return (char *)buf;
}

static int file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* handle runs one request and returns NULL on success or an error text. */
static const char *handle(struct peer *p, char *line, int *quit,
	char *errbuf, size_t errlen)
{
    char *argv[MAXARGS + 1];
    int argc = 0;
    char *save = NULL, *tok;
    const char *verb, *err = NULL;
    gcry_error_t gerr;

    for (tok = strtok_r(line, " ", &save); tok && argc <= MAXARGS;
	    tok = strtok_r(NULL, " ", &save)) {
	argv[argc++] = tok;
    }
    if (argc == 0) {
	return "empty request";
    }
    if (tok) {
	return "too many arguments";
    }
    verb = argv[0];

#define NEED(n) do { if (argc != (n) + 1) { \
	snprintf(errbuf, errlen, "%s takes %d argument(s)", verb, (n)); \
	return errbuf; } } while (0)

    if (strcmp(verb, "INIT") == 0) {
	NEED(3);
	if (strlen(argv[1]) >= sizeof(p->account) ||
		strlen(argv[2]) >= sizeof(p->protocol) ||
		strlen(argv[3]) >= sizeof(p->buddy)) {
	    return "name too long";
	}
	snprintf(p->account, sizeof(p->account), "%s", argv[1]);
	snprintf(p->protocol, sizeof(p->protocol), "%s", argv[2]);
	snprintf(p->buddy, sizeof(p->buddy), "%s", argv[3]);
	return NULL;
    }
    if (strcmp(verb, "KEYGEN") == 0 || strcmp(verb, "KEYLOAD") == 0) {
	char *path;
	NEED(1);
	path = decode_arg(argv[1], NULL, 1, &err);
	if (!path) {
	    return err;
	}
	if (verb[3] == 'G') {
	    gerr = otrl_privkey_generate(p->us, path, p->account,
		    p->protocol);
	} else {
	    gerr = otrl_privkey_read(p->us, path);
	}
	free(path);
	if (gerr) {
	    snprintf(errbuf, errlen, "%s: %s", verb, gcry_strerror(gerr));
	    return errbuf;
	}
	if (!otrl_privkey_find(p->us, p->account, p->protocol)) {
	    return "no key for this account and protocol";
	}
	return NULL;
    }
    if (strcmp(verb, "INSTAG") == 0) {
	OtrlInsTag *t;
	if (argc == 2) {
	    char *path = decode_arg(argv[1], NULL, 1, &err);
	    if (!path) {
		return err;
	    }
	    free(p->instag_path);
	    p->instag_path = path;
	    if (file_exists(path)) {
		gerr = otrl_instag_read(p->us, path);
		if (gerr) {
		    snprintf(errbuf, errlen, "INSTAG: %s", gcry_strerror(gerr));
		    return errbuf;
		}
	    }
	} else if (argc != 1) {
	    return "INSTAG takes 0 or 1 argument";
	}
	t = own_instag(p);
	if (!t) {
	    return "no instance tag";
	}
	emit(p, "INSTAG %08X", t->instag);
	return NULL;
    }
    if (strcmp(verb, "POLICY") == 0 || strcmp(verb, "MMS") == 0) {
	char *end;
	unsigned long v;
	NEED(1);
	errno = 0;
	v = strtoul(argv[1], &end, 0);
	if (errno || *end || v > 0x7fffffffUL) {
	    return "bad number";
	}
	if (verb[0] == 'P') {
	    p->policy = (OtrlPolicy)v;
	} else {
	    p->mms = (int)v;
	}
	return NULL;
    }
    if (strcmp(verb, "SEND") == 0 || strcmp(verb, "QUERY") == 0) {
	char *text;
	if (verb[0] == 'S') {
	    NEED(1);
	    text = decode_arg(argv[1], NULL, 1, &err);
	    if (!text) {
		return err;
	    }
	} else {
	    NEED(0);
	    /* libotr replaces a bare query with its default one (and marks
	     * the offer as sent), as a client's "start OTR" does. */
	    text = strdup("?OTR?");
	}
	gerr = do_send(p, text);
	free(text);
	if (gerr) {
	    snprintf(errbuf, errlen, "send: %s", gcry_strerror(gerr));
	    return errbuf;
	}
	return NULL;
    }
    if (strcmp(verb, "RECV") == 0) {
	char *msg, *plain = NULL;
	int enc;
	NEED(1);
	msg = decode_arg(argv[1], NULL, 1, &err);
	if (!msg) {
	    return err;
	}
	if (do_recv(p, msg, &plain, &enc)) {
	    emit_b64(p, "MSG", (unsigned char *)plain, strlen(plain),
		    enc ? "ENC" : "PLAIN");
	}
	free(plain);
	free(msg);
	return NULL;
    }
    if (strcmp(verb, "SMP") == 0 || strcmp(verb, "SMPQ") == 0 ||
	    strcmp(verb, "SMPRESP") == 0) {
	ConnContext *ctx = best_context(p);
	char *question = NULL, *secret;
	size_t secretlen = 0;
	int isq = strcmp(verb, "SMPQ") == 0;
	NEED(isq ? 2 : 1);
	if (!ctx || ctx->msgstate != OTRL_MSGSTATE_ENCRYPTED) {
	    return "not encrypted";
	}
	if (isq) {
	    question = decode_arg(argv[1], NULL, 1, &err);
	    if (!question) {
		return err;
	    }
	}
	secret = decode_arg(argv[isq ? 2 : 1], &secretlen, 0, &err);
	if (!secret) {
	    free(question);
	    return err;
	}
	if (isq) {
	    otrl_message_initiate_smp_q(p->us, &ops, p, ctx, question,
		    (unsigned char *)secret, secretlen);
	} else if (strcmp(verb, "SMP") == 0) {
	    otrl_message_initiate_smp(p->us, &ops, p, ctx,
		    (unsigned char *)secret, secretlen);
	} else {
	    otrl_message_respond_smp(p->us, &ops, p, ctx,
		    (unsigned char *)secret, secretlen);
	}
	memset(secret, 0, secretlen);
	free(secret);
	free(question);
	return NULL;
    }
    if (strcmp(verb, "SMPABORT") == 0) {
	ConnContext *ctx = best_context(p);
	NEED(0);
	if (!ctx || ctx->msgstate != OTRL_MSGSTATE_ENCRYPTED) {
	    return "not encrypted";
	}
	otrl_message_abort_smp(p->us, &ops, p, ctx);
	return NULL;
    }
    if (strcmp(verb, "END") == 0) {
	ConnContext *ctx = best_context(p);
	NEED(0);
	if (ctx) {
	    otrl_message_disconnect(p->us, &ops, p, p->account, p->protocol,
		    p->buddy, ctx->their_instance);
	}
	return NULL;
    }
    if (strcmp(verb, "FPR") == 0) {
	char own[41] = "-", theirs[41] = "-";
	unsigned char raw[20];
	ConnContext *ctx = best_context(p);
	int trusted = 0;
	NEED(0);
	if (otrl_privkey_fingerprint_raw(p->us, raw, p->account,
		    p->protocol)) {
	    hex(own, raw, 20);
	}
	if (ctx && ctx->active_fingerprint &&
		ctx->active_fingerprint->fingerprint) {
	    hex(theirs, ctx->active_fingerprint->fingerprint, 20);
	    trusted = otrl_context_is_fingerprint_trusted(
		    ctx->active_fingerprint);
	}
	emit(p, "FPR %s %s %d", own, theirs, trusted ? 1 : 0);
	return NULL;
    }
    if (strcmp(verb, "TRUST") == 0) {
	ConnContext *ctx = best_context(p);
	NEED(1);
	if (!ctx || !ctx->active_fingerprint) {
	    return "no active fingerprint";
	}
	otrl_context_set_trust(ctx->active_fingerprint,
		strcmp(argv[1], "1") == 0 ? "verified" : "");
	return NULL;
    }
    if (strcmp(verb, "STATE") == 0) {
	ConnContext *ctx = best_context(p);
	OtrlInsTag *t = otrl_instag_find(p->us, p->account, p->protocol);
	char ssid[41] = "-";
	NEED(0);
	if (!ctx) {
	    emit(p, "STATE plaintext %08X 00000000 0 - 0 1",
		    t ? t->instag : 0);
	    return NULL;
	}
	if (ctx->msgstate == OTRL_MSGSTATE_ENCRYPTED && ctx->sessionid_len &&
		ctx->sessionid_len <= 20) {
	    hex(ssid, ctx->sessionid, ctx->sessionid_len);
	}
	emit(p, "STATE %s %08X %08X %u %s %d %d", msgstate_name(ctx->msgstate),
		ctx->our_instance ? ctx->our_instance : (t ? t->instag : 0),
		ctx->their_instance, ctx->protocol_version, ssid,
		ctx->sessionid_half == OTRL_SESSIONID_SECOND_HALF_BOLD ? 1 : 0,
		ctx->smstate ? (int)ctx->smstate->nextExpected + 1 : 1);
	return NULL;
    }
    if (strcmp(verb, "SYMKEY") == 0) {
	ConnContext *ctx = best_context(p);
	unsigned char key[OTRL_EXTRAKEY_BYTES];
	char h[2 * OTRL_EXTRAKEY_BYTES + 1];
	char *usedata, *end;
	size_t uselen = 0;
	unsigned long use;
	NEED(2);
	errno = 0;
	use = strtoul(argv[1], &end, 0);
	if (errno || *end || use > 0xffffffffUL) {
	    return "bad number";
	}
	usedata = decode_arg(argv[2], &uselen, 0, &err);
	if (!usedata) {
	    return err;
	}
	gerr = otrl_message_symkey(p->us, &ops, p, ctx, (unsigned int)use,
		(unsigned char *)usedata, uselen, key);
	free(usedata);
	if (gerr) {
	    snprintf(errbuf, errlen, "symkey: %s", gcry_strerror(gerr));
	    return errbuf;
	}
	hex(h, key, sizeof(key));
	memset(key, 0, sizeof(key));
	emit(p, "SYMKEY %s", h);
	return NULL;
    }
    if (strcmp(verb, "POLL") == 0) {
	NEED(0);
	otrl_message_poll(p->us, &ops, p);
	return NULL;
    }
    if (strcmp(verb, "VERSION") == 0) {
	NEED(0);
	emit(p, "VERSION %s", otrl_version());
	return NULL;
    }
    if (strcmp(verb, "QUIT") == 0) {
	NEED(0);
	*quit = 1;
	return NULL;
    }
    snprintf(errbuf, errlen, "unknown request %.40s", verb);
    return errbuf;
#undef NEED
}

static int serve(void)
{
    struct peer p;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int quit = 0;
    char errbuf[256];

    peer_init(&p, "libotr@example.org", "xmpp", "balcony@example.org");
    p.out = stdout;
    while (!quit && (n = getline(&line, &cap, stdin)) >= 0) {
	const char *err;
	while (n > 0 && (line[n-1] == '\n' || line[n-1] == '\r')) {
	    line[--n] = '\0';
	}
	err = handle(&p, line, &quit, errbuf, sizeof(errbuf));
	if (err) {
	    emit(&p, "ERR %s", err);
	} else {
	    emit(&p, "OK");
	}
	fflush(stdout);
    }
    free(line);
    free(p.instag_path);
    otrl_userstate_free(p.us);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Self-benchmark: two libotr peers in one process                         */

struct bench {
    struct peer a, b;
    struct queue to_a, to_b;
    char *last_plain[2];
    long delivered[2];
};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* pump delivers queued messages until both directions are quiet. */
static void pump(struct bench *bn)
{
    char *m;
    for (;;) {
	struct peer *to;
	struct queue *q;
	char *plain = NULL;
	int enc, who;
	if (bn->to_b.len > 0) {
	    q = &bn->to_b; to = &bn->b; who = 1;
	} else if (bn->to_a.len > 0) {
	    q = &bn->to_a; to = &bn->a; who = 0;
	} else {
	    return;
	}
	m = queue_pop(q);
	if (do_recv(to, m, &plain, &enc)) {
	    free(bn->last_plain[who]);
	    bn->last_plain[who] = plain;
	    bn->delivered[who]++;
	}
	free(m);
    }
}

static void die_gcry(const char *what, gcry_error_t err)
{
    fprintf(stderr, "libotrpeer: %s: %s\n", what, gcry_strerror(err));
    exit(1);
}

static void bench_key(struct peer *p, const char *keyfile)
{
    gcry_error_t err;
    if (keyfile && file_exists(keyfile)) {
	err = otrl_privkey_read(p->us, keyfile);
	if (err) {
	    die_gcry("reading keys", err);
	}
    }
    if (!otrl_privkey_find(p->us, p->account, p->protocol)) {
	if (keyfile) {
	    err = otrl_privkey_generate(p->us, keyfile, p->account,
		    p->protocol);
	} else {
	    FILE *f = tmpfile();
	    if (!f) {
		perror("libotrpeer: tmpfile");
		exit(1);
	    }
	    err = otrl_privkey_generate_FILEp(p->us, f, p->account,
		    p->protocol);
	    fclose(f);
	}
	if (err) {
	    die_gcry("generating a key", err);
	}
    }
}

static void bench_ake_once(struct bench *bn)
{
    int before_a = bn->a.secure_events, before_b = bn->b.secure_events;
    gcry_error_t err = do_send(&bn->a, "?OTR?");
    if (err) {
	die_gcry("query", err);
    }
    pump(bn);
    if (bn->a.secure_events == before_a || bn->b.secure_events == before_b) {
	fprintf(stderr, "libotrpeer: AKE did not complete\n");
	exit(1);
    }
}

static void bench_end(struct bench *bn)
{
    ConnContext *ca = best_context(&bn->a), *cb = best_context(&bn->b);
    if (ca) {
	otrl_message_disconnect_all_instances(bn->a.us, &ops, &bn->a,
		bn->a.account, bn->a.protocol, bn->a.buddy);
    }
    if (cb) {
	otrl_message_disconnect_all_instances(bn->b.us, &ops, &bn->b,
		bn->b.account, bn->b.protocol, bn->b.buddy);
    }
    queue_clear(&bn->to_a);
    queue_clear(&bn->to_b);
}

static void send_expect(struct bench *bn, struct peer *from, int to_who,
	const char *text)
{
    long before = bn->delivered[to_who];
    gcry_error_t err = do_send(from, text);
    if (err) {
	die_gcry("send", err);
    }
    pump(bn);
    if (bn->delivered[to_who] != before + 1 ||
	    strcmp(bn->last_plain[to_who], text) != 0) {
	fprintf(stderr, "libotrpeer: message not delivered intact\n");
	exit(1);
    }
}

static int bench(const char *what, long n, const char *keyfile, long size)
{
    struct bench bn;
    double start, total = 0;
    char *text;
    long i;

    memset(&bn, 0, sizeof(bn));
    peer_init(&bn.a, "alice@example.org", "xmpp", "bob@example.org");
    peer_init(&bn.b, "bob@example.org", "xmpp", "alice@example.org");
    bn.a.policy = bn.b.policy = OTRL_POLICY_MANUAL;
    bn.a.outbox = &bn.to_b;
    bn.b.outbox = &bn.to_a;
    bench_key(&bn.a, keyfile);
    bench_key(&bn.b, keyfile);
    if (size < 1 || size > 1 << 20) {
	fprintf(stderr, "libotrpeer: bad -size\n");
	return 2;
    }
    text = malloc((size_t)size + 1);
    for (i = 0; i < size; i++) {
	text[i] = "abcdefghijklmnopqrstuvwxyz "[i % 27];
    }
    text[size] = '\0';

    /* Warm up: one AKE and a round trip, so every code path has run. */
    bench_ake_once(&bn);
    send_expect(&bn, &bn.a, 1, text);
    send_expect(&bn, &bn.b, 0, text);

    if (strcmp(what, "ake") == 0) {
	for (i = 0; i < n; i++) {
	    bench_end(&bn);
	    start = now_ns();
	    bench_ake_once(&bn);
	    total += now_ns() - start;
	}
    } else if (strcmp(what, "data") == 0) {
	/* One direction only: after the first message the receiver has
	 * the sender's next key, so later messages need no DH. */
	send_expect(&bn, &bn.a, 1, text);
	start = now_ns();
	for (i = 0; i < n; i++) {
	    send_expect(&bn, &bn.a, 1, text);
	}
	total = now_ns() - start;
    } else if (strcmp(what, "ratchet") == 0) {
	/* Alternating messages: each one acknowledges the peer's newest
	 * key, so both sides rotate their DH keys every round trip. */
	start = now_ns();
	for (i = 0; i < n; i++) {
	    send_expect(&bn, &bn.a, 1, text);
	    send_expect(&bn, &bn.b, 0, text);
	}
	total = now_ns() - start;
    } else {
	fprintf(stderr, "libotrpeer: unknown benchmark %s\n", what);
	return 2;
    }
    printf("BENCH %s %ld %.0f\n", what, n, total / (double)n);
    free(text);
    free(bn.last_plain[0]);
    free(bn.last_plain[1]);
    queue_clear(&bn.to_a);
    queue_clear(&bn.to_b);
    free(bn.to_a.items);
    free(bn.to_b.items);
    otrl_userstate_free(bn.a.us);
    otrl_userstate_free(bn.b.us);
    return 0;
}

/* ---------------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr,
	"usage: libotrpeer\n"
	"       libotrpeer -genkey FILE ACCOUNT PROTOCOL\n"
	"       libotrpeer -bench ake|data|ratchet [-n N] [-keys FILE]"
	" [-size BYTES]\n");
    return 2;
}

int main(int argc, char **argv)
{
    OTRL_INIT;

    if (argc == 1) {
	return serve();
    }
    if (strcmp(argv[1], "-genkey") == 0) {
	OtrlUserState us;
	gcry_error_t err;
	if (argc != 5) {
	    return usage();
	}
	us = otrl_userstate_create();
	err = otrl_privkey_generate(us, argv[2], argv[3], argv[4]);
	otrl_userstate_free(us);
	if (err) {
	    die_gcry("generating a key", err);
	}
	return 0;
    }
    if (strcmp(argv[1], "-bench") == 0 && argc >= 3) {
	long n = 100, size = 64;
	const char *keyfile = NULL;
	int i;
	for (i = 3; i + 1 < argc; i += 2) {
	    if (strcmp(argv[i], "-n") == 0) {
		n = strtol(argv[i+1], NULL, 10);
	    } else if (strcmp(argv[i], "-keys") == 0) {
		keyfile = argv[i+1];
	    } else if (strcmp(argv[i], "-size") == 0) {
		size = strtol(argv[i+1], NULL, 10);
	    } else {
		return usage();
	    }
	}
	if (i != argc || n < 1) {
	    return usage();
	}
	return bench(argv[2], n, keyfile, size);
    }
    return usage();
}
