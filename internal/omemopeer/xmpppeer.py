#!/usr/bin/python3
"""A real OMEMO XMPP client for Balcony's interoperability tests.

python-omemo 1.0's SessionManager (oldmemo 1.0.3 for OMEMO 0.3,
eu.siacs.conversations.axolotl; twomemo 1.0.3 for OMEMO 2, urn:xmpp:omemo:2;
XEP-0384) over slixmpp 1.8 (Debian's python3-slixmpp), with an in-memory
storage. The XMPP glue is ours: raw XEP-0060 IQs for PEP, raw <message/>
stanzas, XEP-0280 carbons, XEP-0380 tags, XEP-0334 hints and the XEP-0420
envelope of OMEMO 2. It imports MemoryStorage and the base64 helpers from
peer.py, which must sit next to it.

Line protocol: one JSON request per line on stdin; each is answered by one
line {"ok": true, "op": OP, ...} or {"ok": false, "op": OP, "error": ...}
once its effect is done (the IQ results are in, the stanza is written).
Events are pushed as lines {"event": KIND, ...} whenever they happen, in
between answers. Byte values are standard base64; "gen" is "03" or "2".

Requests:
  {"op": "connect", "addr": "127.0.0.1:PORT", "ca": FILE, "jid": J,
   "password": P, "gens": ["03", "2"], "blind": true}
      Logs in (STARTTLS, the certificate verified against CA for the JID's
      domain), enables carbons, sends presence with +notify for the device
      list nodes.                          -> {"jid": bound JID, "carbons"}
  {"op": "publish"}  First call: creates the SessionManager, which
      generates the device id and keys and publishes the bundle(s) and the
      device list(s), open access, keeping other devices' entries. Later
      calls re-check and republish (ensure_data_consistency).
                                                      -> {"device_id"}
  {"op": "devices", "jid": J, "gen"?}   Fetches J's device list(s) and the
      bundles of unknown devices.   -> {"devices": [{"device_id", "gens",
      "identity_key", "fingerprint", "trust", "label"}]}
  {"op": "subscribe", "jid": J, "gen"?}  XEP-0060 subscription to J's
      device list node(s): updates arrive as "devicelist" events.
  {"op": "send", "to": J, "gen": G, "body": B, "type"?, "id"?}
      Refreshes the device lists of J and of our own account, encrypts for
      every device of both (trust: blind unless "blind": false), sends.
      -> {"id", "keys": {bareJID: [{"rid", "prekey"}]}, "errors": [...]}
  {"op": "send_empty", "to": J, "gen": G}  An empty OMEMO message to every
      device of J and our other devices we have a session with.
      -> {"id", "keys"}
  {"op": "trust", "jid": J, "identity_key": IK, "level":
   "trusted"|"distrusted"|"undecided"|"blind"}
  {"op": "fingerprint"}   -> {"device_id", "identity_key", "fingerprint"}
  {"op": "node_config", "node": N}  Our own node's configuration, as its
      owner sees it.                            -> {"config": {var: value}}
  {"op": "quit"}

Events:
  "message"    {"gen", "from", "to", "id", "type", "carbon": ""|"received"|
               "sent", "sid", "prekey", "body", "fingerprint", "trust",
               "keys", "warnings", "envelope" (OMEMO 2: "from", "to",
               "time", "rpad", "content")}; 0.3 <key/>s name no JID,
               so "keys" lists them all under our own JID
  "empty"      the same without body: a key transport or heartbeat
  "sent_empty" {"gen", "to", "keys"}: python-omemo sent an empty message
               itself (completing a key exchange, a heartbeat)
  "not_for_us" {"gen", "from", "id", "carbon", "sid", "keys"}: no key for
               this device (the carbon of another device's empty message)
  "duplicate"  {"gen", "from", "id", "carbon"}: a second copy of a message
               already read, ignored
  "decrypt_error" {"gen", "from", "id", "carbon", "error"}
  "devicelist" {"gen", "jid", "devices": [ids]}: a PEP notification
  "plain"      {"from", "id", "body"}: a message with no OMEMO element
  "message_error" {"from", "id", "condition"}
"""

import asyncio
import datetime
import json
import logging
import os
import secrets
import sys
import traceback
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import omemo
from omemo.session import Initiation
from omemo.session_manager import (
    BundleDownloadFailed, BundleNotFound, BundleUploadFailed, BundleDeletionFailed,
    DeviceListDownloadFailed, DeviceListUploadFailed, MessageSendingFailed,
    TrustDecisionFailed, UnknownNamespace, UnknownTrustLevel,
)
from omemo.types import TrustLevel
import oldmemo
import oldmemo.etree
import twomemo
import twomemo.etree
import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from peer import MemoryStorage, b64, unb64

NS03 = oldmemo.oldmemo.NAMESPACE  # eu.siacs.conversations.axolotl
NS2 = twomemo.twomemo.NAMESPACE   # urn:xmpp:omemo:2
GENS = {"03": NS03, "2": NS2}
GEN_OF = {NS03: "03", NS2: "2"}
ETREE = {NS03: oldmemo.etree, NS2: twomemo.etree}
# XEP-0384 §5.3.1 (OMEMO 2) and the 0.3 text: the device list nodes.
DEVICES_NODE = {NS03: NS03 + ".devicelist", NS2: "urn:xmpp:omemo:2:devices"}
DEVICES_NODES = {v: k for k, v in DEVICES_NODE.items()}

CLIENT = "jabber:client"
PUBSUB = "http://jabber.org/protocol/pubsub"
PUBSUB_OWNER = PUBSUB + "#owner"
PUBSUB_EVENT = PUBSUB + "#event"
PUBSUB_ERRORS = PUBSUB + "#errors"
DATA = "jabber:x:data"
CARBONS = "urn:xmpp:carbons:2"
FORWARD = "urn:xmpp:forward:0"
HINTS = "urn:xmpp:hints"
EME = "urn:xmpp:eme:0"
SCE = "urn:xmpp:sce:1"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

FALLBACK_03 = ("This message is encrypted with OMEMO (XEP-0384 0.3), "
               "which your client does not seem to support.")
EME_NAME = {NS03: "OMEMO", NS2: "OMEMO 2"}

# Trust level names stored by python-omemo for each device.
TRUST = {"blind": TrustLevel.TRUSTED, "trusted": TrustLevel.TRUSTED,
         "distrusted": TrustLevel.DISTRUSTED, "undecided": TrustLevel.UNDECIDED}

log = logging.getLogger("xmpppeer")


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def bare_of(jid):
    return slixmpp.JID(jid).bare


def options_form(form_type, fields):
    x = ET.Element(f"{{{DATA}}}x", {"type": "submit"})
    f = ET.SubElement(x, f"{{{DATA}}}field", {"var": "FORM_TYPE", "type": "hidden"})
    ET.SubElement(f, f"{{{DATA}}}value").text = form_type
    for var, value in fields.items():
        f = ET.SubElement(x, f"{{{DATA}}}field", {"var": var})
        ET.SubElement(f, f"{{{DATA}}}value").text = value
    return x


def error_condition(e):
    """The defined condition and pubsub#errors condition of an IqError."""
    err = e.iq.xml.find(f"{{{CLIENT}}}error")
    if err is None:
        return "", ""
    cond = next((c.tag.split("}")[1] for c in err if c.tag.startswith(f"{{{STANZAS}}}")
                 and not c.tag.endswith("}text")), "")
    app = next((c.tag.split("}")[1] for c in err if c.tag.startswith(f"{{{PUBSUB_ERRORS}}}")), "")
    return cond, app


def keys_of(message):
    """{bare JID: [{"rid", "prekey"}]} of a python-omemo Message."""
    out = {}
    for ekm, kex in message.keys:
        out.setdefault(ekm.bare_jid, []).append({"rid": ekm.device_id, "prekey": kex is not None})
    for v in out.values():
        v.sort(key=lambda k: k["rid"])
    return out


def envelope(body, sender):
    """The XEP-0420 envelope of OMEMO 2's SCE profile (XEP-0384 §5.5.1):
    <content> with the body, <rpad/> (MUST), <time/> (MAY), <from/>
    (SHOULD). The padding brings short content to 64 characters and then
    adds 0 to 200 more (XEP-0420 §3)."""
    body_xml = "<body xmlns='jabber:client'>" + escape(body) + "</body>"
    n = max(0, 64 - len(body)) + secrets.randbelow(201)
    rpad = secrets.token_urlsafe(n)[:n]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return ("<envelope xmlns='urn:xmpp:sce:1'><content>" + body_xml + "</content>"
            "<rpad>" + rpad + "</rpad><time stamp=" + quoteattr(stamp) + "/>"
            "<from jid=" + quoteattr(sender) + "/></envelope>").encode("utf-8")


class Peer(slixmpp.ClientXMPP):
    def __init__(self, req):
        super().__init__(req["jid"], req["password"])
        host, port = req["addr"].rsplit(":", 1)
        self.pin = (host, int(port))
        self.ca_certs = req["ca"]
        self.namespaces = [GENS[g] for g in req.get("gens", ["2", "03"])]
        self.blind = req.get("blind", True)
        self.sm = None
        self.device_id = 0
        self.backends = {}
        self.seen = set()  # (namespace, our <key/>) of the messages read
        self.lock = asyncio.Lock()
        self.inbox = asyncio.Queue()
        self.session_started = asyncio.get_running_loop().create_future()
        for name in ("xep_0030", "xep_0115", "xep_0163"):
            self.register_plugin(name)
        for ns in self.namespaces:
            self["xep_0030"].add_feature(DEVICES_NODE[ns] + "+notify")
        self.add_event_handler("session_start", self.on_session_start)
        for ev in ("failed_auth", "connection_failed", "ssl_invalid_chain", "stream_error", "disconnected"):
            self.add_event_handler(ev, lambda e, ev=ev: self.fail_start(ev, e))
        self.register_handler(Callback("omemo messages", MatchXPath(f"{{{CLIENT}}}message"),
                                       lambda st: self.inbox.put_nowait(st.xml)))
        self.worker = asyncio.ensure_future(self.work())

    # --- connection ---

    async def get_dns_records(self, domain, port=None):
        # The address is given: connect there, and verify the certificate
        # against the JID's domain (slixmpp's server_hostname).
        return [(domain, self.pin[0], self.pin[1])]

    def on_session_start(self, _):
        if not self.session_started.done():
            self.session_started.set_result(True)

    def fail_start(self, what, e):
        if not self.session_started.done():
            self.session_started.set_exception(Exception(f"{what}: {e}"))

    async def iq(self, typ, to, payload):
        iq = self.make_iq(ifrom=None, ito=to, itype=typ)
        iq.append(payload)
        res = await iq.send(timeout=30)
        return res.xml

    async def op_connect(self, req):
        self.connect(address=self.pin, use_ssl=False, force_starttls=True, disable_starttls=False)
        await asyncio.wait_for(self.session_started, 60)
        carbons = True
        try:
            await self.iq("set", None, ET.Element(f"{{{CARBONS}}}enable"))
        except IqError:
            carbons = False  # a server without XEP-0280
        await self["xep_0115"].update_caps(broadcast=False)
        self.send_presence()
        return {"jid": str(self.boundjid), "carbons": carbons}

    # --- PEP ---

    async def publish(self, node, item_id, payload, options):
        """Publishes with publish-options (XEP-0060 §7.1.5); a node that
        exists with another configuration is reconfigured (§8.2) and the
        item published again, as XEP-0384 §5.3.2 asks. A server that
        refuses one of the options as a publish option (ejabberd 23.01 knows
        pubsub#max_items only as a node configuration field) gets the node
        configured instead: before the publication when the node exists, so
        that no other device's item is pushed out, else right after it."""
        def request(opts):
            ps = ET.Element(f"{{{PUBSUB}}}pubsub")
            pub = ET.SubElement(ps, f"{{{PUBSUB}}}publish", {"node": node})
            ET.SubElement(pub, f"{{{PUBSUB}}}item", {"id": item_id}).append(payload)
            ET.SubElement(ps, f"{{{PUBSUB}}}publish-options").append(
                options_form(PUBSUB + "#publish-options", opts))
            return ps
        try:
            await self.iq("set", None, request(options))
            return
        except IqError as e:
            if error_condition(e)[1] == "precondition-not-met":
                await self.configure(node, options)
                await self.iq("set", None, request(options))
                return
            if set(options) == {"pubsub#access_model"}:
                raise
            log.warning("%s: publish-options %s refused (%s); configuring the node instead", node, options, e.text)
        try:
            await self.configure(node, options)
            configured = True
        except IqError as e:
            if error_condition(e)[0] != "item-not-found":
                raise
            configured = False
        await self.iq("set", None, request({"pubsub#access_model": options["pubsub#access_model"]}))
        if not configured:
            await self.configure(node, options)

    async def configure(self, node, options):
        ps = ET.Element(f"{{{PUBSUB_OWNER}}}pubsub")
        ET.SubElement(ps, f"{{{PUBSUB_OWNER}}}configure", {"node": node}).append(
            options_form(PUBSUB + "#node_config", options))
        await self.iq("set", None, ps)

    async def items(self, owner, node, item_id=None):
        ps = ET.Element(f"{{{PUBSUB}}}pubsub")
        it = ET.SubElement(ps, f"{{{PUBSUB}}}items", {"node": node})
        if item_id is not None:
            ET.SubElement(it, f"{{{PUBSUB}}}item", {"id": item_id})
        res = await self.iq("get", owner, ps)
        return [list(item) for item in res.iter(f"{{{PUBSUB}}}item")]

    async def upload_bundle(self, bundle):
        ns = bundle.namespace
        elt = ETREE[ns].serialize_bundle(bundle)
        try:
            if ns == NS2:
                # §5.3.2: one node, one item per device, id = device id.
                await self.publish("urn:xmpp:omemo:2:bundles", str(bundle.device_id), elt,
                                   {"pubsub#access_model": "open", "pubsub#max_items": "max"})
            else:
                await self.publish(f"{NS03}.bundles:{bundle.device_id}", "current", elt,
                                   {"pubsub#access_model": "open"})
        except Exception as e:
            raise BundleUploadFailed(f"publishing the {GEN_OF[ns]} bundle: {e}") from e

    async def download_bundle(self, ns, jid, device_id):
        try:
            if ns == NS2:
                items = await self.items(jid, "urn:xmpp:omemo:2:bundles", str(device_id))
            else:
                items = await self.items(jid, f"{NS03}.bundles:{device_id}")
        except IqError as e:
            if error_condition(e)[0] == "item-not-found":
                raise BundleNotFound(f"no {GEN_OF[ns]} bundle for {jid}/{device_id}") from e
            raise BundleDownloadFailed(f"{GEN_OF[ns]} bundle of {jid}/{device_id}: {e}") from e
        except IqTimeout as e:
            raise BundleDownloadFailed(f"{GEN_OF[ns]} bundle of {jid}/{device_id}: timeout") from e
        if len(items) != 1 or len(items[0]) != 1:
            raise BundleNotFound(f"{GEN_OF[ns]} bundle of {jid}/{device_id}: {len(items)} items")
        try:
            return ETREE[ns].parse_bundle(items[0][0], jid, device_id)
        except Exception as e:
            raise BundleDownloadFailed(f"{GEN_OF[ns]} bundle of {jid}/{device_id}: {e}") from e

    async def delete_bundle(self, ns, device_id):
        try:
            if ns == NS2:
                ps = ET.Element(f"{{{PUBSUB}}}pubsub")
                r = ET.SubElement(ps, f"{{{PUBSUB}}}retract", {"node": "urn:xmpp:omemo:2:bundles"})
                ET.SubElement(r, f"{{{PUBSUB}}}item", {"id": str(device_id)})
            else:
                ps = ET.Element(f"{{{PUBSUB_OWNER}}}pubsub")
                ET.SubElement(ps, f"{{{PUBSUB_OWNER}}}delete", {"node": f"{NS03}.bundles:{device_id}"})
            await self.iq("set", None, ps)
        except IqError as e:
            if error_condition(e)[0] != "item-not-found":
                raise BundleDeletionFailed(str(e)) from e

    async def upload_device_list(self, ns, devices):
        try:
            await self.publish(DEVICES_NODE[ns], "current", ETREE[ns].serialize_device_list(devices),
                               {"pubsub#access_model": "open"})
        except Exception as e:
            raise DeviceListUploadFailed(f"publishing the {GEN_OF[ns]} device list: {e}") from e

    async def download_device_list(self, ns, jid):
        try:
            items = await self.items(jid, DEVICES_NODE[ns])
        except IqError as e:
            if error_condition(e)[0] == "item-not-found":
                return {}
            raise DeviceListDownloadFailed(f"{GEN_OF[ns]} device list of {jid}: {e}") from e
        except IqTimeout as e:
            raise DeviceListDownloadFailed(f"{GEN_OF[ns]} device list of {jid}: timeout") from e
        if not items:
            return {}
        if len(items) != 1 or len(items[0]) != 1:
            raise DeviceListDownloadFailed(f"{GEN_OF[ns]} device list of {jid}: {len(items)} items")
        try:
            return ETREE[ns].parse_device_list(items[0][0])
        except Exception as e:
            raise DeviceListDownloadFailed(f"{GEN_OF[ns]} device list of {jid}: {e}") from e

    def send_encrypted(self, to, mtype, msg_id, message, body):
        """Sends an <encrypted/> element; body None: an empty message."""
        ns = message.namespace
        st = self.make_message(mto=to, mtype=mtype)
        st["id"] = msg_id or secrets.token_hex(8)
        if body is not None and ns == NS03:
            st["body"] = FALLBACK_03  # XEP-0380 §5; OMEMO 2 sends none (XEP-0420 §6)
        st.append(ETREE[ns].serialize_message(message))
        if body is not None:
            st.append(ET.Element(f"{{{EME}}}encryption", {"namespace": ns, "name": EME_NAME[ns]}))
        st.append(ET.Element(f"{{{HINTS}}}store"))  # XEP-0384 §5.5.3, XEP-0420 §8
        st.send()
        return st["id"]

    # --- OMEMO ---

    async def op_publish(self, req):
        async with self.lock:
            if self.sm is None:
                self.storage = MemoryStorage()
                for ns in self.namespaces:
                    self.backends[ns] = (oldmemo.Oldmemo if ns == NS03 else twomemo.Twomemo)(self.storage)
                cls = manager_class(self)
                self.sm = await cls.create([self.backends[ns] for ns in self.namespaces], self.storage,
                                           self.boundjid.bare, None, "blind" if self.blind else "undecided")
                # Live from here on: pre-keys are deleted when used and
                # empty messages leave at once (no catch-up phase here).
                await self.sm.after_history_sync()
            else:
                await self.sm.ensure_data_consistency()
            device, _ = await self.sm.get_own_device_information()
        self.device_id = device.device_id
        return {"device_id": device.device_id}

    def namespaces_of(self, req):
        return [GENS[req["gen"]]] if req.get("gen") else self.namespaces

    async def op_devices(self, req):
        jid = bare_of(req["jid"])
        async with self.lock:
            for ns in self.namespaces_of(req):
                await self.sm.refresh_device_list(ns, jid)
            devices = await self.sm.get_device_information(jid)
        out = []
        for d in sorted(devices, key=lambda d: d.device_id):
            gens = sorted(GEN_OF[ns] for ns, on in d.active if on)
            if not gens:
                continue
            out.append({"device_id": d.device_id, "gens": gens, "identity_key": b64(d.identity_key),
                        "fingerprint": " ".join(self.sm.format_identity_key(d.identity_key)),
                        "trust": d.trust_level_name, "label": d.label})
        return {"devices": out}

    async def op_subscribe(self, req):
        subs = {}
        for ns in self.namespaces_of(req):
            ps = ET.Element(f"{{{PUBSUB}}}pubsub")
            ET.SubElement(ps, f"{{{PUBSUB}}}subscribe", {"node": DEVICES_NODE[ns], "jid": str(self.boundjid)})
            res = await self.iq("set", bare_of(req["jid"]), ps)
            sub = res.find(f".//{{{PUBSUB}}}subscription")
            subs[GEN_OF[ns]] = sub.get("subscription") if sub is not None else ""
        return {"subscriptions": subs}

    async def op_send(self, req):
        ns = GENS[req["gen"]]
        to = req["to"]
        jid = bare_of(to)
        own = self.boundjid.bare
        body = req["body"]
        plaintext = envelope(body, own) if ns == NS2 else body.encode("utf-8")
        async with self.lock:
            # Device lists may have changed since the last notification
            # (we have no presence subscription to the contact).
            await self.sm.refresh_device_list(ns, jid)
            if jid != own:
                await self.sm.refresh_device_list(ns, own)
            messages, errors = await self.sm.encrypt(frozenset([jid]), {ns: plaintext}, [ns])
        message = next((m for m in messages if m.namespace == ns), None)
        if message is None:
            raise Exception(f"no device of {jid} or of ours to encrypt for")
        msg_id = self.send_encrypted(to, req.get("type", "chat"), req.get("id"), message, body)
        return {"id": msg_id, "keys": keys_of(message), "errors": [str(e) for e in errors]}

    async def op_send_empty(self, req):
        ns = GENS[req["gen"]]
        jid = bare_of(req["to"])
        own = self.boundjid.bare
        backend = self.backends[ns]
        async with self.lock:
            me, others = await self.sm.get_own_device_information()
            devices = set(others)
            if jid != own:
                devices |= await self.sm.get_device_information(jid)
            content, pkm = await backend.encrypt_empty()
            keys = set()
            for d in devices:
                session = await backend.load_session(d.bare_jid, d.device_id)
                if session is None:
                    continue
                ekm = await backend.encrypt_key_material(session, pkm)
                kex = session.key_exchange if session.initiation is Initiation.ACTIVE and not session.confirmed else None
                keys.add((ekm, kex))
                await backend.store_session(session)
        if not keys:
            raise Exception(f"no session with any device of {jid} or our other devices")
        message = omemo.Message(ns, own, me.device_id, content, frozenset(keys))
        msg_id = self.send_encrypted(req["to"], "chat", None, message, None)
        return {"id": msg_id, "keys": keys_of(message)}

    async def op_trust(self, req):
        if req["level"] not in TRUST:
            raise Exception("unknown trust level " + req["level"])
        async with self.lock:
            await self.sm.set_trust(bare_of(req["jid"]), unb64(req["identity_key"]), req["level"])
        return {}

    async def op_fingerprint(self, req):
        async with self.lock:
            device, _ = await self.sm.get_own_device_information()
        return {"device_id": device.device_id, "identity_key": b64(device.identity_key),
                "fingerprint": " ".join(self.sm.format_identity_key(device.identity_key))}

    async def op_node_config(self, req):
        ps = ET.Element(f"{{{PUBSUB_OWNER}}}pubsub")
        ET.SubElement(ps, f"{{{PUBSUB_OWNER}}}configure", {"node": req["node"]})
        res = await self.iq("get", None, ps)
        config = {}
        for f in res.iter(f"{{{DATA}}}field"):
            values = [v.text or "" for v in f.findall(f"{{{DATA}}}value")]
            if f.get("var"):
                config[f.get("var")] = ",".join(values)
        return {"config": config}

    async def send_message(self, message, jid):
        """python-omemo's _send_message: empty messages it decides to send."""
        try:
            self.send_encrypted(jid, "chat", None, message, None)
        except Exception as e:
            raise MessageSendingFailed(str(e)) from e
        emit({"event": "sent_empty", "gen": GEN_OF[message.namespace], "to": jid, "keys": keys_of(message)})

    # --- incoming ---

    async def work(self):
        while True:
            st = await self.inbox.get()
            try:
                await self.incoming(st)
            except Exception as e:  # reported, never fatal
                emit({"event": "decrypt_error", "from": st.get("from", ""), "id": st.get("id", ""),
                      "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=6)})

    async def incoming(self, st):
        own = self.boundjid.bare
        if st.get("type") == "error":
            err = st.find(f"{{{CLIENT}}}error")
            cond = "" if err is None else next((c.tag.split("}")[1] for c in err), "")
            emit({"event": "message_error", "from": st.get("from", ""), "id": st.get("id", ""),
                  "condition": cond})
            return
        carbon = ""
        for kind in ("received", "sent"):
            wrap = st.find(f"{{{CARBONS}}}{kind}")
            if wrap is None:
                continue
            # XEP-0280 §11: a carbon is valid only from our own bare JID.
            if st.get("from", own) != own:
                emit({"event": "decrypt_error", "from": st.get("from"), "id": st.get("id", ""),
                      "error": "forged carbon"})
                return
            inner = wrap.find(f"{{{FORWARD}}}forwarded/{{{CLIENT}}}message")
            if inner is None:
                return
            st, carbon = inner, kind
            break
        sender = st.get("from") or own
        ev = st.find(f"{{{PUBSUB_EVENT}}}event")
        if ev is not None and not carbon:
            await self.device_list_event(bare_of(sender), ev)
        for ns in (NS2, NS03):
            enc = st.find(f"{{{ns}}}encrypted")
            if enc is not None:
                if self.sm is None or ns not in self.backends:
                    emit({"event": "decrypt_error", "gen": GEN_OF[ns], "from": sender, "id": st.get("id", ""),
                          "carbon": carbon, "error": "generation not enabled"})
                else:
                    await self.encrypted(st, enc, ns, sender, carbon)
                return
        body = st.find(f"{{{CLIENT}}}body")
        if body is not None:
            emit({"event": "plain", "from": sender, "id": st.get("id", ""), "carbon": carbon,
                  "body": body.text or ""})

    async def device_list_event(self, jid, ev):
        for items in ev.findall(f"{{{PUBSUB_EVENT}}}items"):
            ns = DEVICES_NODES.get(items.get("node"))
            if ns is None or ns not in self.backends:
                continue
            for item in items.findall(f"{{{PUBSUB_EVENT}}}item"):
                if len(item) != 1:
                    continue
                devices = ETREE[ns].parse_device_list(item[0])
                if self.sm is not None:
                    async with self.lock:
                        await self.sm.update_device_list(ns, jid, devices)
                emit({"event": "devicelist", "gen": GEN_OF[ns], "jid": jid, "devices": sorted(devices)})

    async def encrypted(self, st, enc, ns, sender, carbon):
        own = self.boundjid.bare
        sender_bare = bare_of(sender)
        base = {"gen": GEN_OF[ns], "from": sender, "to": st.get("to", ""), "id": st.get("id", ""),
                "type": st.get("type", "normal"), "carbon": carbon}
        warnings = []
        # python-omemo reads any value of prekey/kex as true (bool() of the
        # string); xs:boolean also allows "false" and "0". Normalise and
        # warn, so the peer reads the message as the XEP means it.
        attr = "kex" if ns == NS2 else "prekey"
        for key in enc.iter(f"{{{ns}}}key"):
            v = key.get(attr)
            if v is not None and v not in ("true", "1"):
                warnings.append(f"{attr}='{v}'")
                del key.attrib[attr]
        # XEP-0384 §5.6: a second copy of a message (Prosody delivers a
        # message to our own bare JID directly and as a carbon) is ignored.
        path = f"{{{ns}}}header/{{{ns}}}keys[@jid='{own}']/{{{ns}}}key" if ns == NS2 else f"{{{ns}}}header/{{{ns}}}key"
        mine = next((k.text for k in enc.findall(path) if k.get("rid") == str(self.device_id)), None)
        if mine is not None and (ns, mine) in self.seen:
            emit(dict(base, event="duplicate"))
            return
        async with self.lock:
            try:
                if ns == NS2:
                    message = twomemo.etree.parse_message(enc, sender_bare)
                else:
                    message = await oldmemo.etree.parse_message(enc, sender_bare, own, self.sm)
                me, _ = await self.sm.get_own_device_information()
                ours = [kex for ekm, kex in message.keys if ekm.bare_jid == own and ekm.device_id == me.device_id]
                if not ours:
                    # Typically the carbon of an empty message another of
                    # our devices sent to complete a session of its own.
                    emit(dict(base, event="not_for_us", sid=message.device_id, keys=keys_of(message),
                              warnings=warnings))
                    return
                plaintext, device, _ = await self.sm.decrypt(message)
            except Exception as e:
                emit(dict(base, event="decrypt_error", error=f"{type(e).__name__}: {e}", warnings=warnings))
                return
        self.seen.add((ns, mine))
        out = dict(base, sid=message.device_id, prekey=bool(ours) and ours[0] is not None,
                   fingerprint=" ".join(self.sm.format_identity_key(device.identity_key)),
                   trust=device.trust_level_name, keys=keys_of(message), warnings=warnings)
        if plaintext is None:
            emit(dict(out, event="empty"))
            return
        if ns == NS03:
            emit(dict(out, event="message", body=plaintext.decode("utf-8")))
            return
        try:
            out["body"], out["envelope"] = self.open_envelope(plaintext, sender_bare, st, carbon)
        except Exception as e:
            emit(dict(base, event="decrypt_error", error=f"envelope: {e}", warnings=warnings))
            return
        emit(dict(out, event="message"))

    def open_envelope(self, plaintext, sender_bare, st, carbon):
        """Reads an XEP-0420 envelope and checks its affixes (§3): <from/>
        must name the sender, <to/> if present the recipient."""
        env = ET.fromstring(plaintext.decode("utf-8"))
        if env.tag != f"{{{SCE}}}envelope":
            raise Exception(f"root element {env.tag}")
        content = env.find(f"{{{SCE}}}content")
        if content is None:
            raise Exception("no <content/>")
        info = {"content": [c.tag for c in content]}
        frm = env.find(f"{{{SCE}}}from")
        if frm is None:
            raise Exception("no <from/> affix")  # SHOULD in XEP-0384 §5.5.1; the peer insists
        if frm.get("jid") != sender_bare:
            raise Exception(f"<from jid='{frm.get('jid')}'/> but the stanza is from {sender_bare}")
        info["from"] = frm.get("jid")
        to = env.find(f"{{{SCE}}}to")
        if to is not None:
            want = bare_of(st.get("to") or self.boundjid.bare)
            if to.get("jid") != want:
                raise Exception(f"<to jid='{to.get('jid')}'/> but the stanza is to {want}")
            info["to"] = to.get("jid")
        t = env.find(f"{{{SCE}}}time")
        if t is not None:
            info["time"] = t.get("stamp", "")
        rpad = env.find(f"{{{SCE}}}rpad")
        info["rpad"] = -1 if rpad is None else len(rpad.text or "")
        body = content.find(f"{{{CLIENT}}}body")
        return ("" if body is None else body.text or ""), info


def manager_class(peer):
    """A SessionManager whose XMPP side is peer, trusting blindly (BTBV)
    unless the peer was started with "blind": false."""
    class Manager(omemo.SessionManager):
        @staticmethod
        async def _upload_bundle(bundle):
            if bundle.namespace not in GEN_OF:
                raise UnknownNamespace(bundle.namespace)
            await peer.upload_bundle(bundle)

        @staticmethod
        async def _download_bundle(namespace, bare_jid, device_id):
            if namespace not in GEN_OF:
                raise UnknownNamespace(namespace)
            return await peer.download_bundle(namespace, bare_jid, device_id)

        @staticmethod
        async def _delete_bundle(namespace, device_id):
            if namespace not in GEN_OF:
                raise UnknownNamespace(namespace)
            await peer.delete_bundle(namespace, device_id)

        @staticmethod
        async def _upload_device_list(namespace, device_list):
            if namespace not in GEN_OF:
                raise UnknownNamespace(namespace)
            await peer.upload_device_list(namespace, device_list)

        @staticmethod
        async def _download_device_list(namespace, bare_jid):
            if namespace not in GEN_OF:
                raise UnknownNamespace(namespace)
            return await peer.download_device_list(namespace, bare_jid)

        async def _evaluate_custom_trust_level(self, device):
            if device.trust_level_name not in TRUST:
                raise UnknownTrustLevel(device.trust_level_name)
            return TRUST[device.trust_level_name]

        async def _make_trust_decision(self, undecided, identifier):
            raise TrustDecisionFailed("undecided devices: " + ", ".join(
                f"{d.bare_jid}/{d.device_id}" for d in sorted(undecided, key=lambda d: d.device_id)))

        @staticmethod
        async def _send_message(message, bare_jid):
            await peer.send_message(message, bare_jid)

    return Manager


async def main():
    logging.basicConfig(stream=sys.stderr, format="xmpppeer %(levelname)s %(name)s: %(message)s",
                        level=logging.DEBUG if os.environ.get("OMEMOPEER_DEBUG") else logging.WARNING)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    peer = None
    while True:
        line = await reader.readline()
        if not line:
            break
        op = ""
        try:
            req = json.loads(line)
            op = req["op"]
            if op == "quit":
                if peer is not None and peer.is_connected():
                    await asyncio.wait_for(peer.disconnect(), 10)
                emit({"ok": True, "op": op})
                return
            if op == "connect":
                if peer is not None:
                    raise Exception("already connected")
                peer = Peer(req)
                out = await peer.op_connect(req)
            elif peer is None or peer.sm is None and op != "publish":
                raise Exception(f"{op} before connect and publish")
            else:
                fn = getattr(peer, "op_" + op, None)
                if fn is None:
                    raise Exception("unknown op " + op)
                out = await fn(req)
            out.update(ok=True, op=op)
        except Exception as e:  # reported to the Go side, which fails the test
            out = {"ok": False, "op": op, "error": f"{type(e).__name__}: {e}",
                   "trace": traceback.format_exc(limit=6)}
        emit(out)


if __name__ == "__main__":
    asyncio.run(main())
