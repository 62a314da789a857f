#!/usr/bin/env python3
"""Known-answer vectors for the Encrypted Sessions engine, derived a second
time, independently of the Go code, from the text of XEP-0217, XEP-0116,
XEP-0200 and XEP-0189 (and RFC 3526 for the group).

Needs the Python standard library and the `cryptography` package (Debian:
python3-cryptography). Reads keys.json (the test keys) next to this file and
writes JSON to standard output:

    python3 esession_vectors.py > esession-vectors.json

The Go tests (vectors116_test.go) check that the engine reproduces every
value, and that this program, when python3 is available, still writes the
committed file (the DSA signature apart: DSA signatures are randomised; the
Go test verifies the one written).
"""

import base64
import hashlib
import hmac
import json
import os
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

HERE = os.path.dirname(os.path.abspath(__file__))

# --- RFC 3526 group 14, from its formula rather than typed digits --------


def pi_scaled(bits):
    """floor(pi * 2^bits), by the Takano formula:
    pi/4 = 12 atan(1/49) + 32 atan(1/57) - 5 atan(1/239) + 12 atan(1/110443)."""
    guard = 64
    one = 1 << (bits + guard)

    def atan_inv(x):
        term = one // x
        total = term
        x2 = x * x
        n = 1
        while term:
            term //= x2
            t = term // (2 * n + 1)
            total = total - t if n % 2 else total + t
            n += 1
        return total

    pi4 = 12 * atan_inv(49) + 32 * atan_inv(57) - 5 * atan_inv(239) + 12 * atan_inv(110443)
    return (4 * pi4) >> guard


def modp_prime(n, k):
    """p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + k) (RFC 3526)."""
    return (1 << n) - (1 << (n - 64)) - 1 + (1 << 64) * (pi_scaled(n - 130) + k)


P14 = modp_prime(2048, 124476)
G = 2

# --- encodings and primitives --------------------------------------------


def mpi(n):
    """XEP-0116 §8.1: big-endian, no leading zero octets."""
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def b64(b):
    return base64.b64encode(b).decode()


def unb64(s):
    return base64.b64decode(s)


def h(*parts):
    return hashlib.sha256(b"".join(parts)).digest()


def mac(key, *parts):
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def ctr(key, counter_block, data):
    """AES in counter mode from the 16-byte counter block (NIST SP 800-38A)."""
    enc = Cipher(algorithms.AES(key), modes.CTR(counter_block)).encryptor()
    return enc.update(data) + enc.finalize()


def add(counter_block, n):
    return ((int.from_bytes(counter_block, "big") + n) % (1 << 128)).to_bytes(16, "big")


def blocks(n):
    """XEP-0200 §5 step 3: one per full or partial block, one if empty."""
    return max(1, (n + 15) // 16)


# --- XEP-0116 §8.2 normalised data forms -----------------------------------


def escape_text(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")


def field(var, values=(), ftype=None, required=False, options=(), self_closing=False):
    """One normalised <field/>: attributes sorted, double quotes, values,
    then <required/>, then options (the order of the XEP-0217 request)."""
    attrs = ""
    if ftype:
        attrs += ' type="%s"' % ftype
    attrs += ' var="%s"' % var
    out = "<field%s>" % attrs
    for v in values:
        out += "<value>%s</value>" % escape_text(v)
    if required:
        out += "<required />" if self_closing else "<required></required>"
    for o in options:
        out += "<option><value>%s</value></option>" % escape_text(o)
    return out + "</field>"


def form_type(request):
    return field("FORM_TYPE", ["urn:xmpp:ssn"], "hidden" if request else None)


def one_or_list(var, vals):
    """A single option is sent as a hidden value, several as list-single."""
    if len(vals) == 1:
        return field(var, vals, "hidden")
    return field(var, options=vals, ftype="list-single")


# --- XEP-0217 / XEP-0116 formulas ------------------------------------------


def derive(k, who, key_len):
    c = mac(k, who.encode() + b" Cipher Key")
    return {
        "kc": c[32 - key_len:],  # the least significant bytes
        "km": mac(k, who.encode() + b" MAC Key"),
        "ks": mac(k, who.encode() + b" SIGMA Key"),
    }


def identity(keys, counter_block, plaintext, gajim=False):
    """ID = CIPHER(KC, C, pt); M = HMAC(KM, C | ID) with C before."""
    start = add(counter_block, 1) if gajim else counter_block
    ident = ctr(keys["kc"], start, plaintext)
    c_mac = mpi(int.from_bytes(counter_block, "big")) if gajim else counter_block
    return ident, mac(keys["km"], c_mac, ident), add(counter_block, blocks(len(plaintext)))


SAS_DIGITS = "acdefghikmopqruvwxy123456789"


def sas(m_a, form_b, gajim=False):
    n = int.from_bytes(h(m_a, form_b.encode(), b"Short Authentication String")[-3:], "big")
    digits = ""
    for _ in range(5):
        digits = SAS_DIGITS[n % 28] + digits
        n //= 28
    if gajim:
        digits = digits.lstrip("a") or "a"
    return digits


def stanza(keys, counter_block, content, extra=(), gajim=False):
    """XEP-0200 §5: pad with spaces, CTR, <data/>, MAC over m_content | C."""
    padded = content + b" " * (-len(content) % 16)
    start = add(counter_block, 1) if gajim else counter_block
    data = b64(ctr(keys["kc"], start, padded))
    m_content = "<data>%s</data>" % data + "".join("<%s>%s</%s>" % (n, v, n) for n, v in extra)
    a_mac = b64(mac(keys["km"], m_content.encode(), counter_block))
    return data, a_mac, add(counter_block, blocks(len(padded)))


# --- public keys (XEP-0116 §11.3, XML Signature KeyValue) ------------------


def load_keys():
    with open(os.path.join(HERE, "keys.json")) as f:
        raw = json.load(f)
    keys = {}
    for name, v in raw.items():
        x = lambda k: int(v[k], 16)  # noqa: E731
        if "N" in v:
            n, e, d, p, q = x("N"), int(v["E"]), x("D"), x("P"), x("Q")
            pub = rsa.RSAPublicNumbers(e, n)
            keys[name] = rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                               rsa.rsa_crt_iqmp(p, q), pub).private_key()
        else:
            params = dsa.DSAParameterNumbers(x("P"), x("Q"), x("G"))
            keys[name] = dsa.DSAPrivateNumbers(x("X"), dsa.DSAPublicNumbers(x("Y"), params)).private_key()
    return keys


def key_value(key):
    """The normalised <KeyValue/> (no namespace), integers as CryptoBinary."""
    nums = key.public_key().public_numbers()
    cb = lambda n: b64(mpi(n))  # noqa: E731
    if isinstance(key, rsa.RSAPrivateKey):
        inner = "<RSAKeyValue><Modulus>%s</Modulus><Exponent>%s</Exponent></RSAKeyValue>" % (cb(nums.n), cb(nums.e))
    else:
        pn = nums.parameter_numbers
        inner = "<DSAKeyValue><P>%s</P><Q>%s</Q><G>%s</G><Y>%s</Y></DSAKeyValue>" % (
            cb(pn.p), cb(pn.q), cb(pn.g), cb(nums.y))
    return "<KeyValue>%s</KeyValue>" % inner


def rsa_sign(key, message):
    return key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def proof(key, mac_value):
    """pubKey | <SignatureValue>SIGN(mac)</SignatureValue> (§5.4 steps 4-6)."""
    sig = rsa_sign(key, mac_value)
    return key_value(key).encode() + b"<SignatureValue>" + b64(sig).encode() + b"</SignatureValue>", sig


RSA_URI = "http://www.w3.org/2000/09/xmldsig#rsa-sha256"
DSA_URI = "http://www.w3.org/2000/09/xmldsig#dsa-sha256"


def hexs(b):
    return b.hex()


# --- XEP-0217: the 4-message exchange without public keys ------------------

V217 = {  # inputs: the random values of the committed vector
    "x": "81141044b35bd0611ebdee2169fd8840f348e0103e22c334296e65fe94badbc1",
    "y": "ff89ff8c7a8fb77e42ae596026341e17c3991375b4c3158cdfebbd94329a0bfd",
    "N_A": "SKLnPOfxc+Dm1xMu9ehEbw==",
    "N_B": "RdMVQcw7pP8ZZYPrUqqZZQ==",
    "C_A": "28be1b35b7e5b7f17bf902632e8a166d",
    "decoy": "uwtQZltWvGsvwlnmkhnp+rXzouAJe8BWi8k+9Rqktak=",
    "srshash": "4rN1gSM7DjRxYagpqEty6db7o2Kz/wqhnp48YWIx6+g=",
    "next_N_A": "LzvRB70e5KO3YQXAB0cNdA==",
}


def xep0217(profile):
    gajim = profile == "gajim"
    key_len = 32 if gajim else 16
    x, y = int(V217["x"], 16), int(V217["y"], 16)
    n_a, n_b, c_a = unb64(V217["N_A"]), unb64(V217["N_B"]), bytes.fromhex(V217["C_A"])
    e, d = pow(G, x, P14), pow(G, y, P14)
    c_b = bytes([c_a[0] ^ 0x80]) + c_a[1:]
    he = h(mpi(e))
    sc = gajim
    form_a = (form_type(True) + field("accept", ["1"], "boolean", True, self_closing=sc)
              + field("logging", ftype="list-single", required=True, options=["mustnot", "may"], self_closing=sc)
              + field("disclosure", ftype="list-single", required=True, options=["never"], self_closing=sc)
              + field("security", ftype="list-single", required=True, options=["e2e"], self_closing=sc)
              + field("modp", ftype="list-single", options=["14"])
              + field("crypt_algs", ["aes128-ctr"], "hidden") + field("hash_algs", ["sha256"], "hidden")
              + field("compress", ["none"], "hidden") + field("stanzas", ftype="list-multi", options=["message"])
              + field("init_pubkey", ["none"], "hidden") + field("resp_pubkey", ["none"], "hidden")
              + field("ver", ftype="list-single", options=["1.0"]) + field("rekey_freq", ["4294967295"], "hidden")
              + field("my_nonce", [V217["N_A"]], "hidden") + field("sas_algs", ["sas28x5"], "hidden")
              + field("dhhashes", [b64(he)], "hidden"))
    answers = [("accept", "1"), ("logging", "mustnot"), ("disclosure", "never"), ("security", "e2e"),
               ("modp", "14"), ("crypt_algs", "aes128-ctr"), ("hash_algs", "sha256"), ("compress", "none"),
               ("stanzas", "message"), ("init_pubkey", "none"), ("resp_pubkey", "none"), ("ver", "1.0"),
               ("rekey_freq", "4294967295"), ("my_nonce", V217["N_B"]), ("sas_algs", "sas28x5"),
               ("dhkeys", b64(mpi(d))), ("nonce", V217["N_A"]), ("counter", b64(mpi(int.from_bytes(c_a, "big"))))]
    form_b = form_type(False) + "".join(field(k, [v]) for k, v in answers)
    k = h(mpi(pow(d, x, P14)))
    ka = derive(k, "Initiator", key_len)
    form_a2 = (form_type(False) + field("accept", ["1"]) + field("nonce", [V217["N_B"]])
               + field("dhkeys", [b64(mpi(e))]) + field("rshashes", [V217["decoy"]]))
    mac_a = mac(ka["ks"], n_b, n_a, mpi(e), form_a.encode(), form_a2.encode())
    id_a, m_a, c_a_after = identity(ka, c_a, mac_a, gajim)
    kf = h(k)  # K' = SHA256(K): no SRS, no OSS, the hash still applied
    fa, fb = derive(kf, "Initiator", key_len), derive(kf, "Responder", key_len)
    form_b2 = form_type(False) + field("nonce", [V217["N_A"]]) + field("srshash", [V217["srshash"]])
    mac_b = mac(fb["ks"], n_a, n_b, mpi(d), form_b.encode(), form_b2.encode())
    id_b, m_b, c_b_after = identity(fb, c_b, mac_b, gajim)
    rs = mac(kf, b"New Retained Secret")
    plaintext = b"<body>Hello, Bob!</body>"
    data, a_mac, c_a_stanza = stanza(fa, c_a_after, plaintext, gajim=gajim)
    return {
        "profile": profile, "group": 14, "x_hex": V217["x"], "y_hex": V217["y"],
        "N_A_b64": V217["N_A"], "N_B_b64": V217["N_B"], "C_A_hex": V217["C_A"], "C_B_hex": hexs(c_b),
        "e_b64": b64(mpi(e)), "d_b64": b64(mpi(d)), "He_b64": b64(he),
        "form_A": form_a, "form_B": form_b, "form_A2": form_a2, "form_B2": form_b2,
        "K_dh_hex": hexs(k), "KC_A_prov_hex": hexs(ka["kc"]), "KM_A_prov_hex": hexs(ka["km"]),
        "KS_A_prov_hex": hexs(ka["ks"]), "mac_A_hex": hexs(mac_a), "identity_A_b64": b64(id_a),
        "mac_field_A_b64": b64(m_a), "SAS": sas(m_a, form_b, gajim), "K_final_hex": hexs(kf),
        "KC_A_hex": hexs(fa["kc"]), "KM_A_hex": hexs(fa["km"]), "KC_B_hex": hexs(fb["kc"]),
        "KM_B_hex": hexs(fb["km"]), "KS_B_hex": hexs(fb["ks"]), "srshash_b64": V217["srshash"],
        "mac_B_hex": hexs(mac_b), "identity_B_b64": b64(id_b), "mac_field_B_b64": b64(m_b),
        "new_retained_secret_hex": hexs(rs), "next_session_N_A_b64": V217["next_N_A"],
        "next_session_rshash_b64": b64(mac(unb64(V217["next_N_A"]), rs)),
        "next_session_srshash_b64": b64(mac(rs, b"Shared Retained Secret")),
        "C_A_after_negotiation_hex": hexs(c_a_after), "C_B_after_negotiation_hex": hexs(c_b_after),
        "stanza_plaintext": (plaintext + b" " * (-len(plaintext) % 16)).decode(),
        "stanza_c": "<c xmlns='http://www.xmpp.org/extensions/xep-0200.html#ns'><data>%s</data><mac>%s</mac></c>"
                    % (data, a_mac),
        "C_A_after_stanza_hex": hexs(c_a_stanza),
    }


# --- XEP-0116: the 3-message SIGMA-I exchange with RSA identities -----------

VI = {
    "x": "c3e1f0a5d2b4968778695a4b3c2d1e0f1122334455667788990011223344556f",
    "y": "a0b1c2d3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccddeeff",
    "N_A": "00112233445566778899aabbccddeeff",
    "N_B": "ffeeddccbbaa99887766554433221100",
    "C_A": "0123456789abcdef0fedcba987654321",
}


def request_fields(nonce_b64, values, sigma_i, init_pub, resp_pub):
    """The request of the engine's defaults with public keys: the fields of
    the XEP-0116 §4.1 example in its order."""
    out = (form_type(True) + field("accept", ["1"], "boolean", True)
           + field("logging", ftype="list-single", required=True, options=["may"])
           + field("disclosure", ftype="list-single", required=True, options=["never"])
           + field("security", ftype="list-single", required=True, options=["e2e"])
           + field("modp", ftype="list-single", options=["14"])
           + field("crypt_algs", ["aes128-ctr"], "hidden") + field("hash_algs", ["sha256"], "hidden")
           + field("sign_algs", ftype="list-single", options=[RSA_URI, DSA_URI])
           + field("compress", ["none"], "hidden") + field("stanzas", ftype="list-multi", options=["message"])
           + one_or_list("init_pubkey", init_pub) + one_or_list("resp_pubkey", resp_pub)
           + field("ver", ftype="list-single", options=["1.0"]) + field("rekey_freq", ["4294967295"], "hidden")
           + field("my_nonce", [nonce_b64], "hidden"))
    if sigma_i:
        return out + field("dhkeys", values, "hidden")
    return out + field("sas_algs", ["sas28x5"], "hidden") + field("dhhashes", values, "hidden")


def answer_fields(n_b, d, n_a, c_a, sas_algs):
    ans = [("accept", "1"), ("logging", "may"), ("disclosure", "never"), ("security", "e2e"), ("modp", "14"),
           ("crypt_algs", "aes128-ctr"), ("hash_algs", "sha256"), ("sign_algs", RSA_URI), ("compress", "none"),
           ("stanzas", "message"), ("init_pubkey", "key"), ("resp_pubkey", "key"), ("ver", "1.0"),
           ("rekey_freq", "4294967295"), ("my_nonce", b64(n_b))]
    if sas_algs:
        ans.append(("sas_algs", "sas28x5"))
    ans += [("dhkeys", b64(mpi(d))), ("nonce", b64(n_a)), ("counter", b64(mpi(int.from_bytes(c_a, "big"))))]
    return form_type(False) + "".join(field(k, [v]) for k, v in ans)


def sigma_i(keys):
    alice, bob = keys["rsa_alice"], keys["rsa_bob"]
    x, y = int(VI["x"], 16), int(VI["y"], 16)
    n_a, n_b, c_a = bytes.fromhex(VI["N_A"]), bytes.fromhex(VI["N_B"]), bytes.fromhex(VI["C_A"])
    e, d = pow(G, x, P14), pow(G, y, P14)
    c_b = bytes([c_a[0] ^ 0x80]) + c_a[1:]
    form_a = request_fields(b64(n_a), [b64(mpi(e))], True, ["key", "hash"], ["key"])
    form_b = answer_fields(n_b, d, n_a, c_a, False)
    k = h(mpi(pow(e, y, P14)))
    ka, kb = derive(k, "Initiator", 16), derive(k, "Responder", 16)
    # Bob (§5.4): no form_B2 in the 3-message exchange.
    mac_b = mac(kb["ks"], n_a, n_b, mpi(d), key_value(bob).encode(), form_b.encode())
    pt_b, sig_b = proof(bob, mac_b)
    id_b, m_b, c_b_after = identity(kb, c_b, pt_b)
    # Alice (§6.3).
    form_a2 = form_type(False) + field("accept", ["1"]) + field("nonce", [b64(n_b)])
    mac_a = mac(ka["ks"], n_b, n_a, mpi(e), key_value(alice).encode(), form_a.encode(), form_a2.encode())
    pt_a, sig_a = proof(alice, mac_a)
    id_a, m_a, c_a_after = identity(ka, c_a, pt_a)
    data, a_mac, c_a_stanza = stanza(ka, c_a_after, b"<body>Hello, Bob!</body>")
    return {
        "x_hex": VI["x"], "y_hex": VI["y"], "N_A_hex": VI["N_A"], "N_B_hex": VI["N_B"], "C_A_hex": VI["C_A"],
        "e_b64": b64(mpi(e)), "d_b64": b64(mpi(d)), "form_A": form_a, "form_B": form_b, "form_A2": form_a2,
        "K_hex": hexs(k), "KC_A_hex": hexs(ka["kc"]), "KM_A_hex": hexs(ka["km"]), "KS_A_hex": hexs(ka["ks"]),
        "KC_B_hex": hexs(kb["kc"]), "KM_B_hex": hexs(kb["km"]), "KS_B_hex": hexs(kb["ks"]),
        "mac_B_hex": hexs(mac_b), "sign_B_b64": b64(sig_b), "identity_B_b64": b64(id_b), "mac_field_B_b64": b64(m_b),
        "mac_A_hex": hexs(mac_a), "sign_A_b64": b64(sig_a), "identity_A_b64": b64(id_a), "mac_field_A_b64": b64(m_a),
        "C_A_after_negotiation_hex": hexs(c_a_after), "C_B_after_negotiation_hex": hexs(c_b_after),
        "stanza_data_b64": data, "stanza_mac_b64": a_mac, "C_A_after_stanza_hex": hexs(c_a_stanza),
    }


# --- XEP-0116: the 4-message exchange with RSA identities, SRS and OSS -------

VR = {
    "x": "e0d1c2b3a4958677685948372615f4e3d2c1b0a9f8e7d6c5b4a3928170615243",
    "y": "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "N_A": "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
    "N_B": "a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5",
    "C_A": "7fffffffffffffffffffffffffffff00",
    "SRS": "0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000",
    "OSS": "correct horse battery staple",
    "decoy": "3333333333333333333333333333333333333333333333333333333333333333",
}


def sigma_r_keys(keys):
    alice, bob = keys["rsa_alice"], keys["rsa_bob"]
    x, y = int(VR["x"], 16), int(VR["y"], 16)
    n_a, n_b, c_a = bytes.fromhex(VR["N_A"]), bytes.fromhex(VR["N_B"]), bytes.fromhex(VR["C_A"])
    srs, oss, decoy = bytes.fromhex(VR["SRS"]), VR["OSS"].encode(), bytes.fromhex(VR["decoy"])
    e, d = pow(G, x, P14), pow(G, y, P14)
    c_b = bytes([c_a[0] ^ 0x80]) + c_a[1:]
    form_a = request_fields(b64(n_a), [b64(h(mpi(e)))], False, ["key", "hash", "none"], ["key", "none"])
    form_b = answer_fields(n_b, d, n_a, c_a, True)
    k = h(mpi(pow(d, x, P14)))
    ka = derive(k, "Initiator", 16)
    rshashes = [b64(mac(n_a, srs)), b64(decoy)]
    form_a2 = (form_type(False) + field("accept", ["1"]) + field("nonce", [b64(n_b)])
               + field("dhkeys", [b64(mpi(e))]) + field("rshashes", rshashes))
    mac_a = mac(ka["ks"], n_b, n_a, mpi(e), key_value(alice).encode(), form_a.encode(), form_a2.encode())
    pt_a, sig_a = proof(alice, mac_a)
    id_a, m_a, c_a_after = identity(ka, c_a, pt_a)
    kf = h(k, srs, oss)  # K' = HASH(K | SRS | OSS)
    fa, fb = derive(kf, "Initiator", 16), derive(kf, "Responder", 16)
    srshash = mac(srs, b"Shared Retained Secret")
    form_b2 = form_type(False) + field("nonce", [b64(n_a)]) + field("srshash", [b64(srshash)])
    mac_b = mac(fb["ks"], n_a, n_b, mpi(d), key_value(bob).encode(), form_b.encode(), form_b2.encode())
    pt_b, sig_b = proof(bob, mac_b)
    id_b, m_b, c_b_after = identity(fb, c_b, pt_b)
    return {
        "x_hex": VR["x"], "y_hex": VR["y"], "N_A_hex": VR["N_A"], "N_B_hex": VR["N_B"], "C_A_hex": VR["C_A"],
        "SRS_hex": VR["SRS"], "OSS": VR["OSS"], "decoy_hex": VR["decoy"],
        "form_A": form_a, "form_B": form_b, "form_A2": form_a2, "form_B2": form_b2,
        "K_hex": hexs(k), "K_final_hex": hexs(kf), "mac_A_hex": hexs(mac_a), "sign_A_b64": b64(sig_a),
        "identity_A_b64": b64(id_a), "mac_field_A_b64": b64(m_a), "SAS": sas(m_a, form_b),
        "KC_A_hex": hexs(fa["kc"]), "KM_A_hex": hexs(fa["km"]), "KC_B_hex": hexs(fb["kc"]), "KM_B_hex": hexs(fb["km"]),
        "srshash_b64": b64(srshash), "mac_B_hex": hexs(mac_b), "sign_B_b64": b64(sig_b),
        "identity_B_b64": b64(id_b), "mac_field_B_b64": b64(m_b),
        "new_retained_secret_hex": hexs(mac(kf, b"New Retained Secret")),
        "C_A_after_negotiation_hex": hexs(c_a_after), "C_B_after_negotiation_hex": hexs(c_b_after),
    }


# --- XEP-0200 §9: a key exchange -------------------------------------------


def rekey(si):
    """Alice re-keys in the SIGMA-I session after her first stanza: e' rides
    in <key/>, MACed under her old keys; K = d^x' is used unhashed."""
    x2 = int("d00dfeedfacecafebeefdeadc0de00112233445566778899aabbccddeeff0011", 16)
    d = int.from_bytes(unb64(si["d_b64"]), "big")
    old = {"kc": bytes.fromhex(si["KC_A_hex"]), "km": bytes.fromhex(si["KM_A_hex"])}
    counter_block = bytes.fromhex(si["C_A_after_stanza_hex"])
    e2 = pow(G, x2, P14)
    k = mpi(pow(d, x2, P14))
    init = {"kc": mac(k, b"Rekey Initiator Crypt")[-16:], "km": mac(k, b"Rekey Initiator MAC")}
    acc = {"kc": mac(k, b"Rekey Acceptor Crypt")[-16:], "km": mac(k, b"Rekey Acceptor MAC")}
    content = b"<body>new keys</body>"
    data, a_mac, after = stanza(old, counter_block, content, extra=[("key", b64(mpi(e2)))])
    # the next stanza goes under the new keys, the counter continuing
    data2, mac2, _ = stanza(init, after, b"<body>under the new key</body>")
    return {
        "x_hex": "%064x" % x2, "e_b64": b64(mpi(e2)), "C_hex": hexs(counter_block),
        "KC_init_hex": hexs(init["kc"]), "KM_init_hex": hexs(init["km"]),
        "KC_acc_hex": hexs(acc["kc"]), "KM_acc_hex": hexs(acc["km"]),
        "stanza_data_b64": data, "stanza_mac_b64": a_mac,
        "next_data_b64": data2, "next_mac_b64": mac2,
    }


# --- fingerprints, DSA and XEP-0189 ----------------------------------------


def fingerprints(keys):
    out = {}
    for name in ["rsa_alice", "rsa_bob", "dsa_alice"]:
        kv = key_value(keys[name])
        out[name] = {"key_value": kv, "fingerprint_hex": hexs(h(kv.encode()))}
    return out


def dsa_signature(keys):
    message = bytes.fromhex(VI["N_A"]) * 2
    sig = keys["dsa_alice"].sign(message, hashes.SHA256())
    # DER SEQUENCE {r, s} to r | s, each the size of q (32 bytes)
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    r, s = decode_dss_signature(sig)
    return {"message_hex": hexs(message), "signature_b64": b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))}


def pep_print(keys):
    n = keys["rsa_bob"].public_key().public_numbers()
    begin, end, jid = "2026-01-14T18:44:18Z", "2027-01-14T18:44:18Z", "bob@example.com"
    return {"begin": begin, "end": end, "jid": jid, "modulus": str(n.n), "exponent": str(n.e),
            "print_b64": b64(h((begin + end + jid + str(n.n) + str(n.e)).encode()))}


def main():
    keys = load_keys()
    si = sigma_i(keys)
    out = {
        "xep0217": [xep0217("spec"), xep0217("gajim")],
        "sigma_i": si,
        "sigma_r_keys_oss": sigma_r_keys(keys),
        "rekey": rekey(si),
        "fingerprints": fingerprints(keys),
        "dsa_signature": dsa_signature(keys),
        "pep_print": pep_print(keys),
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
