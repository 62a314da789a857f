#!/usr/bin/python3
"""A python-omemo peer for Balcony's OMEMO interoperability tests.

It drives the real backends of python-omemo 1.0 (oldmemo 1.0.3 for
eu.siacs.conversations.axolotl, twomemo 1.0.3 for urn:xmpp:omemo:2) the way
omemo.SessionManager does for one device, with an in-memory omemo.Storage.
Bundles go through the backends' own XML code (etree.serialize_bundle and
parse_bundle), so the sign-bit and key-format conversions are theirs.

Line protocol: one JSON object per line on stdin, one JSON answer per line
on stdout, {"ok": true, ...} or {"ok": false, "error": "..."}. Byte values
are standard base64.

  {"op": "init", "gen": "03"|"2", "jid": J}             -> {"device_id", "bundle"}
  {"op": "bundle"}                                      -> {"bundle"}
  {"op": "encrypt", "jid", "device_id", "plaintext"|"empty": true, "bundle"?}
                                                        -> {"key", "prekey", "payload"?, "iv"?}
  {"op": "decrypt", "jid", "device_id", "key", "prekey", "payload"?, "iv"?}
                                                        -> {"plaintext"?, "empty", "new_session"}
  {"op": "quit"}

A bundle is {"device_id", "ik", "spk", "spk_id", "spks", "prekeys": [{"id", "key"}]}
with the bytes of the XML elements.
"""

import asyncio
import base64
import json
import secrets
import sys
import traceback
import xml.etree.ElementTree as ET

import omemo
from omemo.storage import Just, Nothing, Storage
import oldmemo
import oldmemo.etree
import twomemo
import twomemo.etree


class MemoryStorage(Storage):
    def __init__(self):
        super().__init__(True)
        self.data = {}

    async def _load(self, key):
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key, value):
        self.data[key] = value

    async def _delete(self, key):
        self.data.pop(key, None)


def b64(b):
    return base64.b64encode(b).decode()


def unb64(s):
    return base64.b64decode(s, validate=True)


class Peer:
    def __init__(self, gen, jid):
        self.gen = gen
        self.jid = jid
        self.storage = MemoryStorage()
        if gen == "03":
            self.mod, self.etree, self.ns = oldmemo.oldmemo, oldmemo.etree, "eu.siacs.conversations.axolotl"
            self.backend = oldmemo.Oldmemo(self.storage)
        else:
            self.mod, self.etree, self.ns = twomemo.twomemo, twomemo.etree, "urn:xmpp:omemo:2"
            self.backend = twomemo.Twomemo(self.storage)
        self.device_id = secrets.randbelow(2**31 - 1) + 1

    async def setup(self):
        await self.backend.generate_pre_keys(100)

    async def bundle(self):
        b = await self.backend.get_bundle(self.jid, self.device_id)
        elt = self.etree.serialize_bundle(b)
        q = lambda name: elt.find("{%s}%s" % (self.ns, name))
        if self.gen == "03":
            spk = q("signedPreKeyPublic")
            out = {"ik": q("identityKey").text, "spk": spk.text, "spk_id": int(spk.get("signedPreKeyId")),
                   "spks": q("signedPreKeySignature").text,
                   "prekeys": [{"id": int(e.get("preKeyId")), "key": e.text}
                               for e in elt.iter("{%s}preKeyPublic" % self.ns)]}
        else:
            spk = q("spk")
            out = {"ik": q("ik").text, "spk": spk.text, "spk_id": int(spk.get("id")), "spks": q("spks").text,
                   "prekeys": [{"id": int(e.get("id")), "key": e.text} for e in elt.iter("{%s}pk" % self.ns)]}
        out["device_id"] = self.device_id
        return out

    def parse_bundle(self, jid, device_id, b):
        ns = self.ns
        elt = ET.Element("{%s}bundle" % ns)
        if self.gen == "03":
            ET.SubElement(elt, "{%s}signedPreKeyPublic" % ns, {"signedPreKeyId": str(b["spk_id"])}).text = b["spk"]
            ET.SubElement(elt, "{%s}signedPreKeySignature" % ns).text = b["spks"]
            ET.SubElement(elt, "{%s}identityKey" % ns).text = b["ik"]
            pks = ET.SubElement(elt, "{%s}prekeys" % ns)
            for pk in b["prekeys"]:
                ET.SubElement(pks, "{%s}preKeyPublic" % ns, {"preKeyId": str(pk["id"])}).text = pk["key"]
        else:
            ET.SubElement(elt, "{%s}spk" % ns, {"id": str(b["spk_id"])}).text = b["spk"]
            ET.SubElement(elt, "{%s}spks" % ns).text = b["spks"]
            ET.SubElement(elt, "{%s}ik" % ns).text = b["ik"]
            pks = ET.SubElement(elt, "{%s}prekeys" % ns)
            for pk in b["prekeys"]:
                ET.SubElement(pks, "{%s}pk" % ns, {"id": str(pk["id"])}).text = pk["key"]
        return self.etree.parse_bundle(elt, jid, device_id)

    async def encrypt(self, req):
        jid, did = req["jid"], req["device_id"]
        if req.get("empty"):
            content, pkm = await self.backend.encrypt_empty()
        else:
            content, pkm = await self.backend.encrypt_plaintext(unb64(req["plaintext"]))
        session = await self.backend.load_session(jid, did)
        if session is None:
            bundle = self.parse_bundle(jid, did, req["bundle"])
            session, ekm = await self.backend.build_session_active(jid, did, bundle, pkm)
        else:
            ekm = await self.backend.encrypt_key_material(session, pkm)
        await self.backend.store_session(session)
        out = {}
        # As SessionManager does: repeat the key exchange until confirmed.
        if session.initiation is omemo.session.Initiation.ACTIVE and not session.confirmed:
            kx = session.key_exchange.serialize(ekm.serialize())
            out["key"] = b64(kx[0] if isinstance(kx, tuple) else kx)
            out["prekey"] = True
        else:
            out["key"] = b64(ekm.serialize())
            out["prekey"] = False
        if not content.empty:
            out["payload"] = b64(content.ciphertext)
        if self.gen == "03":
            out["iv"] = b64(content.initialization_vector)
        return out

    async def decrypt(self, req):
        jid, did = req["jid"], req["device_id"]
        key = unb64(req["key"])
        kx = None
        if req["prekey"]:
            if self.gen == "03":
                kx, key = self.mod.KeyExchangeImpl.parse(key, False)
            else:
                kx, key = self.mod.KeyExchangeImpl.parse(key)
        ekm = self.mod.EncryptedKeyMaterialImpl.parse(key, jid, did)
        session = await self.backend.load_session(jid, did)
        new_session = False
        if kx is not None and not (session is not None
                                   and session.initiation is omemo.session.Initiation.PASSIVE
                                   and session.key_exchange.builds_same_session(kx)):
            session, pkm = await self.backend.build_session_passive(jid, did, kx, ekm)
            new_session = True
        elif session is None:
            raise Exception("no session")
        else:
            pkm = await self.backend.decrypt_key_material(session, ekm)
        out = {"empty": "payload" not in req, "new_session": new_session}
        if "payload" in req:
            if self.gen == "03":
                content = self.mod.ContentImpl(unb64(req["payload"]), unb64(req["iv"]))
            else:
                content = self.mod.ContentImpl(unb64(req["payload"]))
            out["plaintext"] = b64(await self.backend.decrypt_plaintext(content, pkm))
        await self.backend.store_session(session)
        if new_session:
            await self.backend.delete_pre_key(session)
        return out


async def main():
    peer = None
    for line in sys.stdin:
        try:
            req = json.loads(line)
            op = req["op"]
            if op == "quit":
                print(json.dumps({"ok": True}), flush=True)
                return
            if op == "init":
                peer = Peer(req["gen"], req["jid"])
                await peer.setup()
                out = {"device_id": peer.device_id, "bundle": await peer.bundle()}
            elif op == "bundle":
                out = {"bundle": await peer.bundle()}
            elif op == "encrypt":
                out = await peer.encrypt(req)
            elif op == "decrypt":
                out = await peer.decrypt(req)
            else:
                raise Exception("unknown op " + op)
            out["ok"] = True
        except Exception as e:  # reported to the Go side, which fails the test
            out = {"ok": False, "error": "%s: %s" % (type(e).__name__, e),
                   "trace": traceback.format_exc(limit=4)}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
