#!/usr/bin/python3
"""Generate known-answer vectors for Balcony's OMEMO engine from the real
python-omemo stack (python3-xeddsa, python3-x3dh, python3-doubleratchet,
python3-oldmemo, python3-twomemo from Debian bookworm).

Usage: /usr/bin/python3 vectors.py > ../../omemo/testdata/vectors.json

Randomness is replaced by a deterministic generator (SHA-256 of a label
and a counter) so the output is reproducible; every value the Go tests
need is written out, inputs and outputs alike.
"""

import asyncio
import base64
import hashlib
import json
import secrets
import sys

import xeddsa
import x3dh
import doubleratchet
from doubleratchet.recommended import diffie_hellman_ratchet_curve25519
import oldmemo.oldmemo as old
import twomemo.twomemo as two


class DetRand:
    def __init__(self, label):
        self.label = label.encode()
        self.ctr = 0
        self.log = []

    def token_bytes(self, n):
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self.label + self.ctr.to_bytes(8, "big")).digest()
            self.ctr += 1
        out = out[:n]
        self.log.append(out)
        return out


def patch(label):
    r = DetRand(label)
    secrets.token_bytes = r.token_bytes
    diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet._generate_priv = staticmethod(lambda: r.token_bytes(32))
    return r


def b64(b):
    return base64.b64encode(b).decode()


def clamp(k):
    k = bytearray(k)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    return bytes(k)


def xeddsa_vectors():
    out = []
    for i, msg in enumerate([b"", b"abc", bytes(range(256)), b"\x05" + bytes(32)]):
        r = DetRand("xeddsa%d" % i)
        priv = clamp(r.token_bytes(32))
        nonce = r.token_bytes(64)
        u = xeddsa.priv_to_curve25519_pub(priv)
        sig = xeddsa.ed25519_priv_sign(xeddsa.priv_force_sign(priv, False), msg, nonce)
        assert xeddsa.ed25519_verify(sig, xeddsa.curve25519_pub_to_ed25519_pub(u, False), msg)
        # The convention of python-omemo's oldmemo (and pre-XEdDSA
        # libsignal): sign with the Ed25519 key as it is, and carry its
        # sign bit in the top bit of the signature.
        seed = r.token_bytes(32)
        edpub = xeddsa.seed_to_ed25519_pub(seed)
        sig2 = bytearray(xeddsa.ed25519_seed_sign(seed, msg))
        sig2[63] |= edpub[31] & 0x80
        out.append({
            "priv": b64(priv), "u": b64(u), "msg": b64(msg), "nonce": b64(nonce), "sig": b64(sig),
            "seed": b64(seed), "seed_ed": b64(edpub), "seed_priv": b64(xeddsa.seed_to_priv(seed)),
            "seed_u": b64(xeddsa.ed25519_pub_to_curve25519_pub(edpub)),
            "seed_sig_signbit": b64(bytes(sig2)), "seed_sign": bool(edpub[31] & 0x80),
        })
    return out


async def kdf_vectors():
    out = []
    for i in range(3):
        r = DetRand("kdf%d" % i)
        rk, dh, ck, mk = (r.token_bytes(32) for _ in range(4))
        out.append({
            "rk": b64(rk), "dh": b64(dh), "ck": b64(ck),
            "root2": b64(await two.RootChainKDFImpl.derive(rk, dh, 64)),
            "root03": b64(await old.RootChainKDFImpl.derive(rk, dh, 64)),
            # python-doubleratchet steps the chain with the constant
            # 0x02 0x01: the first 32 bytes are the next chain key, the
            # last 32 the message key.
            "chain2": b64(await two.MessageChainKDFImpl.derive(ck, two.DoubleRatchetImpl.MESSAGE_CHAIN_CONSTANT, 64)),
            "chain03": b64(await old.MessageChainKDFImpl.derive(ck, old.DoubleRatchetImpl.MESSAGE_CHAIN_CONSTANT, 64)),
        })
    return out


async def x3dh_vectors():
    out = []
    for name, mod in (("2", two), ("03", old)):
        r = patch("x3dh" + name)
        seed_a, seed_b = r.token_bytes(32), r.token_bytes(32)
        bob = mod.StateImpl.create(x3dh.IdentityKeyFormat.ED_25519, x3dh.HashFunction.SHA_256,
                                   mod.StateImpl.INFO, x3dh.identity_key_pair.IdentityKeyPairSeed(seed_b))
        bob.generate_pre_keys(1)
        alice = mod.StateImpl.create(x3dh.IdentityKeyFormat.ED_25519, x3dh.HashFunction.SHA_256,
                                     mod.StateImpl.INFO, x3dh.identity_key_pair.IdentityKeyPairSeed(seed_a))
        model = bob.model
        spk_priv = model.signed_pre_key.priv
        (opk_priv,) = tuple(model.pre_keys)
        n = len(r.log)
        ss, ad, header = await alice.get_shared_secret_active(bob.bundle)
        (ek_priv,) = r.log[n:]
        ss2, ad2, _ = await bob.get_shared_secret_passive(header)
        assert ss == ss2 and ad == ad2
        out.append({
            "gen": name, "seed_a": b64(seed_a), "seed_b": b64(seed_b),
            "spk_priv": b64(spk_priv), "opk_priv": b64(opk_priv), "ek_priv": b64(ek_priv),
            "spk_sig": b64(bob.bundle.signed_pre_key_sig), "spk": b64(bob.bundle.signed_pre_key),
            "ik_b": b64(bob.bundle.identity_key),
            "sk": b64(ss), "ad": b64(ad),
        })
    return out


async def ratchet_vectors():
    """The first message of a session and a reply, exactly as the backends
    build them: KDF_RK, KDF_CK, message keys, AES-CBC, the header protobuf
    and the truncated MAC in one known answer."""
    out = []
    for name, mod in (("2", two), ("03", old)):
        r = patch("ratchet" + name)
        sk = r.token_bytes(32)
        bob_spk = r.token_bytes(32)
        bob_spk_pub = xeddsa.priv_to_curve25519_pub(bob_spk)
        ik_len = mod.StateImpl.IDENTITY_KEY_ENCODING_LENGTH
        ad = r.token_bytes(2 * ik_len)
        if name == "03":
            ad = b"\x05" + ad[1:ik_len] + b"\x05" + ad[ik_len + 1:]
        n = len(r.log)
        plain = b"key material for the payload 0123"
        dr_a, msg = await mod.DoubleRatchetImpl.encrypt_initial_message(
            diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet, mod.RootChainKDFImpl,
            mod.MessageChainKDFImpl, mod.DoubleRatchetImpl.MESSAGE_CHAIN_CONSTANT, 1000, 1000,
            mod.AEADImpl, sk, bob_spk_pub, plain, ad)
        ratchet_a = r.log[n]
        msg2 = await dr_a.encrypt_message(b"second", ad)
        n = len(r.log)
        dr_b, got = await mod.DoubleRatchetImpl.decrypt_initial_message(
            diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet, mod.RootChainKDFImpl,
            mod.MessageChainKDFImpl, mod.DoubleRatchetImpl.MESSAGE_CHAIN_CONSTANT, 1000, 1000,
            mod.AEADImpl, sk, bob_spk, msg, ad)
        assert got == plain
        ratchet_b = r.log[n]
        ad_rev = ad[ik_len:] + ad[:ik_len] if name == "03" else ad
        reply = await dr_b.encrypt_message(b"reply", ad_rev)
        out.append({
            "gen": name, "sk": b64(sk), "spk_priv": b64(bob_spk), "ad": b64(ad),
            "ratchet_a": b64(ratchet_a), "ratchet_b": b64(ratchet_b),
            "plain": b64(plain), "msg": b64(msg.ciphertext), "msg2": b64(msg2.ciphertext),
            "reply": b64(reply.ciphertext),
        })
    return out


async def payload_vectors():
    out = []
    for name, mod, cls in (("2", two, two.Twomemo), ("03", old, old.Oldmemo)):
        r = patch("payload" + name)
        backend = cls.__new__(cls)
        content, material = await cls.encrypt_plaintext(backend, b"<envelope>payload</envelope>")
        v = {"gen": name, "plain": b64(b"<envelope>payload</envelope>"), "ciphertext": b64(content.ciphertext),
             "key": b64(material.key), "tag": b64(material.auth_tag)}
        if name == "03":
            v["iv"] = b64(content.initialization_vector)
        out.append(v)
    return out


async def main():
    doc = {
        "generator": "internal/omemopeer/vectors.py with python3-xeddsa 1.0.2, python3-x3dh 1.0.3, "
                     "python3-doubleratchet 1.0.3, python3-oldmemo 1.0.3, python3-twomemo 1.0.3 (Debian bookworm)",
        "xeddsa": xeddsa_vectors(),
        "kdf": await kdf_vectors(),
        "x3dh": await x3dh_vectors(),
        "ratchet": await ratchet_vectors(),
        "payload": await payload_vectors(),
    }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


asyncio.run(main())
