#!/usr/bin/env python3
"""Writes the hand-made seeds of the fuzz corpora (docs/FUZZING.md, "Seeds for what the wire can
reach"): inputs that take the connector to a check no recorded exchange reaches, one check per
seed, each named hand-WHAT and described below where it is made.

    tests/fuzz/hand_seeds.py [CORPUS_DIR]      (default: tests/fuzz/corpus)

gen_corpus records genuine exchanges; these are built from the wire format alone (PROTOCOL.md
version 2, RFC 2743 3.1 token framing, RFC 4178 SPNEGO, RFC 4121 Kerberos TOK_IDs, [MS-NLMP] NTLM
messages), so that they do not depend on a realm: nothing in them is encrypted or signed with a
key. The only recorded bytes are an NTLM NEGOTIATE, a message gss-ntlmssp 1.2.0 sends identically
on every run. Running the script again writes the same files; it writes hand-* files only and
never touches the seeds gen_corpus records.
"""
import os
import struct
import sys

VERSION = 2
HANDSHAKE, HS_ERROR, POLICY, DATA, CLOSE = 1, 2, 3, 4, 5
NONE, SIGN, SEAL = 0, 1, 2
MORE = 0x01
# fuzz_client_handshake, fuzz_established, fuzz_sample: the first byte picks the path
KERBEROS, NEG_KERBEROS, NEG_NTLM, NTLM = 0, 1, 2, 3
NONE_OK = 4  # fuzz_established: the server that accepts level none
SERVER = 4  # fuzz_sample: the server role


def frame(ftype, body=b"", level=NONE, flags=0, length=None):
    """A frame (PROTOCOL.md section 3); LENGTH, when given, is announced instead of len(BODY)."""
    n = len(body) if length is None else length
    return struct.pack(">BBBBI", VERSION, ftype, level, flags, n) + body


def hs(token):
    return frame(HANDSHAKE, token)


def hs_error(token=b"", reason=b"refused"):
    return frame(HS_ERROR, struct.pack(">I", len(token)) + token + reason)


def der(tag, body):
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(b)]) + b + body


OID_SPNEGO = der(0x06, bytes.fromhex("2b0601050502"))
OID_KRB5 = der(0x06, bytes.fromhex("2a864886f712010202"))
OID_NTLM = der(0x06, bytes.fromhex("2b06010401823702020a"))
OID_UNKNOWN = der(0x06, bytes.fromhex("2b0601040182370202"))  # one arc short of NTLM's


def framed(oid, inner):
    """RFC 2743 3.1: [APPLICATION 0] { thisMech OID, innerToken }."""
    return der(0x60, oid + inner)


def krb5(tok_id, body=b"\x00" * 16):
    return framed(OID_KRB5, struct.pack(">H", tok_id) + body)


KRB_AP_REQ, KRB_AP_REP, KRB_ERROR = 0x0100, 0x0200, 0x0300


def krb_error():
    """RFC 4120 5.9.1 KRB-ERROR ([APPLICATION 30]): KRB_AP_ERR_MODIFIED from NEGIO.TEST's
    service negio/localhost, in the RFC 4121 token framing with TOK_ID 03 00."""
    def integer(v):
        return der(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big"))

    def gstring(s):
        return der(0x1B, s)

    sname = der(0x30, der(0xA0, integer(3)) +
                der(0xA1, der(0x30, gstring(b"negio") + gstring(b"localhost"))))
    body = (der(0xA0, integer(5)) + der(0xA1, integer(30)) +
            der(0xA4, der(0x18, b"20250101000000Z")) + der(0xA5, integer(0)) +
            der(0xA6, integer(41)) + der(0xA9, gstring(b"NEGIO.TEST")) + der(0xAA, sname))
    return framed(OID_KRB5, struct.pack(">H", KRB_ERROR) + der(0x7E, der(0x30, body)))


def neg_init(mechs, token=None, extra=b""):
    """RFC 4178 4.2.1 NegTokenInit: mechTypes [0], mechToken [2]."""
    seq = der(0xA0, der(0x30, b"".join(mechs)))
    if token is not None:
        seq += der(0xA2, der(0x04, token))
    return framed(OID_SPNEGO, der(0xA0, der(0x30, seq + extra)))


def neg_resp(state=None, mech=None, token=None, mic=None):
    """RFC 4178 4.2.2 NegTokenResp."""
    seq = b""
    if state is not None:
        seq += der(0xA0, der(0x0A, bytes([state])))
    if mech is not None:
        seq += der(0xA1, mech)
    if token is not None:
        seq += der(0xA2, der(0x04, token))
    if mic is not None:
        seq += der(0xA3, der(0x04, mic))
    return der(0xA1, der(0x30, seq))


# gss-ntlmssp 1.2.0's NEGOTIATE, as every client run sends it (flags 0xe2088237, version 6.2)
NTLM_NEGOTIATE = bytes.fromhex("4e544c4d53535000" "01000000" "378208e2" "0000000000000000"
                               "0000000000000000" "060200000000000f")


def ntlm_header(mtype):
    return b"NTLMSSP\0" + struct.pack("<I", mtype)


def field(length, offset):
    return struct.pack("<HHI", length, length, offset)


def utf16(s):
    return s.encode("utf-16-le")


def av_pairs():
    """[MS-NLMP] 2.2.2.1: NetBIOS and DNS domain and computer names, the end. No MsvAvTimestamp:
    gss-ntlmssp 1.2.0 refuses a CHALLENGE whose timestamp is more than 36 hours old (a clock skew
    error), which a recorded one soon is."""
    out = b""
    for av_id, value in ((2, utf16("NEGIO")), (1, utf16("NEGIO-HOST")), (4, utf16("negio.test")),
                         (3, utf16("localhost"))):
        out += struct.pack("<HH", av_id, len(value)) + value
    return out + struct.pack("<HH", 0, 0)


NTLM_UNICODE, NTLM_TARGET_DOMAIN = 0x00000001, 0x00010000
# what gss-ntlmssp 1.2.0 serves: Unicode, sign, seal, a domain target, extended session security
CHALLENGE_FLAGS = 0xE2898235


def ntlm_challenge(flags=CHALLENGE_FLAGS, target=utf16("NEGIO"), name_field=None,
                   info_field=None, info=None):
    """[MS-NLMP] 2.2.1.2 CHALLENGE: fixed part (48 bytes), version, then target name and info
    (INFO, else av_pairs()); NAME_FIELD or INFO_FIELD replace the (length, offset) of a field."""
    info = av_pairs() if info is None else info
    at = 56
    name_field = name_field or (len(target), at)
    info_field = info_field or (len(info), at + len(target))
    return (ntlm_header(2) + field(*name_field) + struct.pack("<I", flags) + b"\x11" * 8 +
            b"\0" * 8 + field(*info_field) + bytes.fromhex("060200000000000f") + target + info)


def ntlm_authenticate_anonymous():
    """[MS-NLMP] 3.2.5.1.2 / 3.3.5.1.2: an anonymous AUTHENTICATE: empty user, domain, NT
    response, and a one-byte zero LM response; no key exchange. It needs no key and no knowledge
    of the server's challenge."""
    at = 88  # after the version and the 16 bytes gss-ntlmssp reads as the MIC whatever the flags
    flags = 0xE2088A15 | 0x00000800  # NTLMSSP_NEGOTIATE_ANONYMOUS
    return (ntlm_header(3) + field(1, at) + field(0, at + 1) + field(0, at + 1) +
            field(0, at + 1) + field(0, at + 1) + field(0, at + 1) + struct.pack("<I", flags) +
            bytes.fromhex("060200000000000f") + b"\0" * 16 + b"\0")


SEEDS = []


def seed(target, name, data):
    SEEDS.append((target, "hand-" + name, data))


def sample_token(flags, token=b"", length=None):
    """gss-sample profile (PROTOCOL.md appendix A): [flags u8][length u32 BE][token]."""
    return bytes([flags]) + struct.pack(">I", len(token) if length is None else length) + token


# ---- fuzz_frame: every 8-byte window is a header --------------------------------------------
# Headers of version 2 that the decoder refuses for each reason in turn (the recorded
# refused-headers are mostly of another version): a handshake frame at level sign, a
# HANDSHAKE_ERROR at seal, a POLICY and a CLOSE at none, types 0 and 6, level 3, DATA with a flag
# other than MORE, a HANDSHAKE with MORE; then the accepted forms.
seed("fuzz_frame", "version-2-refused-and-accepted",
     b"".join(struct.pack(">BBBBI", VERSION, t, lv, fl, n) for t, lv, fl, n in (
         (HANDSHAKE, SIGN, 0, 10), (HS_ERROR, SEAL, 0, 10), (POLICY, NONE, 0, 48),
         (CLOSE, NONE, 0, 4), (0, NONE, 0, 1), (6, SIGN, 0, 1), (DATA, 3, 0, 1),
         (DATA, SIGN, 0x02, 1), (HANDSHAKE, NONE, MORE, 1), (HANDSHAKE, NONE, 0, 0xFFFFFFFF),
         (HS_ERROR, NONE, 0, 4), (POLICY, SIGN, 0, 64), (DATA, SEAL, MORE, 4096),
         (CLOSE, SEAL, 0, 4))))

# ---- fuzz_config: every operation, with accepted and refused operands, in both roles ---------
def cfg_str(v):
    return b"\xff" if v is None else bytes([len(v)]) + v


def cfg_ops(ops):
    out = b""
    for code, *operands in ops:
        out += bytes([code])
        for o in operands:
            out += o if isinstance(o, bytes) and code in (7, 8, 9, 10) else cfg_str(o)
    return out


def u32s(*vals):
    return b"".join(struct.pack(">I", v) for v in vals)


CFG_OPS = [
    (0, b"negotiate"), (0, b"kerberos"), (0, b"ntlm"), (0, b"spnego"), (0, None),
    (1, b"none"), (1, b"sign"), (1, b"seal"), (1, b"default"), (1, None),
    (2, b"negio@localhost"), (2, b"negio"), (2, b"@host"), (2, b"negio@"), (2, None),
    (3, b"/nonexistent/keytab"), (3, b""), (3, None),
    (4, b"MEMORY:negio"), (4, b""), (4, None),
    (5, b"/nonexistent/ntlm"), (5, b""), (5, None),
    (6, b"alice", b"secret"), (6, b"alice", None), (6, b"", b"secret"), (6, None, None),
    (7, u32s(0, 0, 0, 0, 0)), (7, u32s(2048, 4, 8192, 65536, 65536)),
    (7, u32s(512, 1, 100, 0, 0)), (7, u32s(0, 2, 0x80000000, 0, 0)),
    (8, b"\x01\x02"), (8, b"\x03\xfe"), (8, b"\xff\x00"),
    (9, b"\x03\x00"), (9, b"\x00\x07"), (9, b"\x08\x02"), (9, b"\x01\x01"),
    (10, b"\x01"), (10, b"\x00"),
    (11,),
    (12, b"localhost:4444"), (12, b"[::1]:443"), (12, b"host"), (12, b"h:123456"),
    (13, b"alice@NEGIO.TEST", b"alice"), (13, b"", b"alice"), (13, None, b"x"),
    (14, b"NEGIO"), (14, b""), (14, None),
    (15, b"alice@NEGIO.TEST=alice"), (15, b"alice"), (15, b"a b=c"),
    (16, b"alice"), (16, b"-alice"), (16, b".."),
    (11,),
]
seed("fuzz_config", "every-operation-client", b"\x00" + cfg_ops(CFG_OPS))
seed("fuzz_config", "every-operation-server", b"\x01" + cfg_ops(CFG_OPS))

# ---- fuzz_server_handshake: what a client sends ---------------------------------------------
S = "fuzz_server_handshake"
# the header checks (head_check, head_allowed): another version, a token over max_token (64 KiB),
# an empty token, a POLICY, a CLOSE and a DATA frame before the handshake, a frame cut short by
# the end of the stream, a HANDSHAKE_ERROR too short to hold its token length
seed(S, "version-1-frame", struct.pack(">BBBBI", 1, HANDSHAKE, NONE, 0, 40) + NTLM_NEGOTIATE)
seed(S, "handshake-over-max-token", frame(HANDSHAKE, b"", length=65537))
seed(S, "hs-error-over-its-limit", frame(HS_ERROR, b"", length=65536 + 4 + 1024))
seed(S, "empty-handshake-token", frame(HANDSHAKE, b""))
seed(S, "unknown-frame-type", frame(9, b"x"))
seed(S, "policy-before-the-handshake", frame(POLICY, b"\0" * 32, level=SIGN))
seed(S, "close-before-the-handshake", frame(CLOSE, b"\0" * 20, level=SIGN))
seed(S, "data-before-establishment", frame(DATA, b"hello"))
seed(S, "stream-ends-inside-a-frame", frame(HANDSHAKE, NTLM_NEGOTIATE[:20], length=40))
seed(S, "stream-ends-inside-an-hs-error", frame(HS_ERROR, b"\0\0", length=40))
seed(S, "hs-error-without-token-length", frame(HS_ERROR, b"\0\0"))
seed(S, "hs-error-token-past-its-end", frame(HS_ERROR, struct.pack(">I", 100) + b"x"))
# the client's first token (peer_token.c check_first, framed, check_krb5, parse_init)
seed(S, "first-token-not-framed", hs(der(0x30, OID_KRB5)))
seed(S, "first-token-framed-without-oid", hs(der(0x60, der(0x04, b"x"))))
seed(S, "first-token-of-unknown-mechanism", hs(framed(OID_UNKNOWN, b"\x01\x00")))
seed(S, "kerberos-ap-rep-as-first-token", hs(krb5(KRB_AP_REP)))
seed(S, "kerberos-token-without-tok-id", hs(framed(OID_KRB5, b"\x01")))
seed(S, "ntlm-shorter-than-a-header", hs(b"NTLMSSP\0\x01"))
seed(S, "ntlm-negotiate-too-short", hs(ntlm_header(1) + b"\x07\x82"))
seed(S, "ntlm-negotiate-without-optional-fields", hs(NTLM_NEGOTIATE[:20]))
seed(S, "ntlm-negotiate-without-extended-session-security",
     hs(NTLM_NEGOTIATE[:12] + struct.pack("<I", 0xE2088237 & ~0x00080000) + NTLM_NEGOTIATE[16:]))
seed(S, "ntlm-negotiate-field-outside",
     hs(NTLM_NEGOTIATE[:16] + field(8, 200) + NTLM_NEGOTIATE[24:]))
seed(S, "ntlm-challenge-as-first-token", hs(ntlm_challenge()))
seed(S, "ntlm-authenticate-as-first-token", hs(ntlm_authenticate_anonymous()))
seed(S, "ntlm-unknown-message-type", hs(ntlm_header(9) + b"\0" * 20))
seed(S, "spnego-init-without-negtokeninit", hs(framed(OID_SPNEGO, der(0xA1, der(0x30, b"")))))
seed(S, "spnego-init-empty-sequence", hs(framed(OID_SPNEGO, der(0xA0, der(0x30, b"")))))
seed(S, "spnego-init-truncated-element",
     hs(framed(OID_SPNEGO, der(0xA0, der(0x30, b"\xa0\x10\x30")))))
seed(S, "spnego-init-elements-out-of-order",
     hs(framed(OID_SPNEGO, der(0xA0, der(0x30, der(0xA2, der(0x04, b"x")) +
                                          der(0xA0, der(0x30, OID_KRB5)))))))
seed(S, "spnego-init-element-longer-than-content",
     hs(framed(OID_SPNEGO, der(0xA0, der(0x30, der(0xA0, der(0x30, OID_KRB5) + b"\0"))))))
seed(S, "spnego-init-mechtypes-not-a-sequence",
     hs(framed(OID_SPNEGO, der(0xA0, der(0x30, der(0xA0, der(0x04, OID_KRB5)))))))
seed(S, "spnego-init-no-mechanism", hs(neg_init([])))
# DER lengths negio__der_next refuses: an element cut after its tag, an indefinite length
seed(S, "spnego-init-element-cut-after-its-tag",
     hs(framed(OID_SPNEGO, der(0xA0, der(0x30, b"\xa0")))))
seed(S, "spnego-init-indefinite-length",
     hs(framed(OID_SPNEGO, der(0xA0, der(0x30, b"\xa0\x80" + der(0x30, OID_KRB5) + b"\0\0")))))
seed(S, "spnego-init-mechtype-not-an-oid", hs(neg_init([der(0x04, b"x")])))
seed(S, "spnego-init-spnego-inside-spnego", hs(neg_init([OID_SPNEGO], b"x")))
seed(S, "spnego-init-kerberos-with-ntlm-token", hs(neg_init([OID_KRB5], NTLM_NEGOTIATE)))
seed(S, "spnego-init-unknown-mechanism-token", hs(neg_init([OID_UNKNOWN, OID_NTLM], b"x")))
seed(S, "spnego-init-mechlistmic-and-neghints",
     hs(neg_init([OID_NTLM], NTLM_NEGOTIATE, der(0xA3, der(0x30, b"")) +
                 der(0xA4, der(0x04, b"\0" * 16)))))
# after the NTLM NEGOTIATE (raw, then inside SPNEGO), the server has answered with a CHALLENGE;
# the client's next token is checked against what may follow
seed(S, "ntlm-then-not-ntlm", hs(NTLM_NEGOTIATE) + hs(krb5(KRB_AP_REQ)))
seed(S, "ntlm-then-second-negotiate", hs(NTLM_NEGOTIATE) + hs(NTLM_NEGOTIATE))
# The server that also allows NTLM gets the input in two halves: the first holds the NEGOTIATE
# and the start of a second token of 8 KB, so that appending the second half moves the unread
# part of the input buffer to its front (negio__buf_reserve) instead of growing it.
seed(S, "ntlm-then-large-token", hs(NTLM_NEGOTIATE) +
     hs(ntlm_header(3) + b"\0" * 52 + struct.pack("<I", CHALLENGE_FLAGS) + b"\0" * 8000))
# An anonymous AUTHENTICATE needs no key, so it is the one way a fuzzed client could complete the
# server's context. gss-ntlmssp 1.2.0 refuses it itself ("Feature not supported"); were a later
# version to accept it, the connector's check_context refuses anonymous contexts.
seed(S, "ntlm-anonymous-authenticate", hs(NTLM_NEGOTIATE) + hs(ntlm_authenticate_anonymous()))
seed(S, "negotiate-ntlm-anonymous-authenticate",
     hs(neg_init([OID_NTLM], NTLM_NEGOTIATE)) +
     hs(neg_resp(token=ntlm_authenticate_anonymous())))
SPNEGO_NTLM_FIRST = hs(neg_init([OID_NTLM], NTLM_NEGOTIATE))
for name, token in (
        ("not-a-negtokenresp", der(0xA0, der(0x30, b""))),
        ("truncated-element", der(0xA1, der(0x30, b"\xa0\x10"))),
        ("negstate-not-enumerated", der(0xA1, der(0x30, der(0xA0, der(0x02, b"\x01"))))),
        ("unknown-negstate", neg_resp(state=7)),
        ("names-a-mechanism", neg_resp(state=1, mech=OID_NTLM, token=NTLM_NEGOTIATE)),
        ("names-an-unknown-mechanism", neg_resp(state=1, mech=OID_UNKNOWN)),
        ("ntlm-negotiate-again", neg_resp(token=NTLM_NEGOTIATE)),
        ("kerberos-token-inside", neg_resp(token=krb5(KRB_AP_REQ)))):
    seed(S, "negotiate-ntlm-then-negtokenresp-" + name, SPNEGO_NTLM_FIRST + hs(token))
seed(S, "negotiate-ntlm-then-negtokenresp-elements-reversed",
     SPNEGO_NTLM_FIRST + hs(der(0xA1, der(0x30, der(0xA2, der(0x04, b"x")) +
                                          der(0xA0, der(0x0A, b"\x01"))))))

# ---- fuzz_client_handshake: what a server sends back (first byte: the path) ----------------
C = "fuzz_client_handshake"
for path, pname in ((KERBEROS, "kerberos"), (NEG_KERBEROS, "negotiate-kerberos")):
    pb = bytes([path])
    if path == KERBEROS:
        seed(C, "kerberos-reply-not-framed", pb + hs(der(0x30, b"")))
        seed(C, "kerberos-reply-ap-req", pb + hs(krb5(KRB_AP_REQ)))
        seed(C, "kerberos-reply-krb-error", pb + hs(krb_error()))
        inner = krb_error()
    else:
        inner = neg_resp(state=2, token=krb_error())
    # a HANDSHAKE_ERROR whose token is a Kerberos error: the only error token that reaches GSS
    seed(C, pname + "-hs-error-with-krb-error", pb + hs_error(inner))
    seed(C, pname + "-hs-error-with-ap-rep", pb + hs_error(
        krb5(KRB_AP_REP) if path == KERBEROS else neg_resp(state=2, token=krb5(KRB_AP_REP))))
    seed(C, pname + "-hs-error-with-garbage", pb + hs_error(b"\x30\x00garbage"))
seed(C, "negotiate-kerberos-hs-error-without-token", bytes([NEG_KERBEROS]) + hs_error(
    neg_resp(state=2)))
seed(C, "kerberos-hs-error-empty-token", bytes([KERBEROS]) + hs_error(b""))
# SPNEGO replies refused by parse_resp, and the downgrade rule: a client that offered Kerberos
# with a ticket refuses the server's move to NTLM
NK = bytes([NEG_KERBEROS])
for name, token in (
        ("not-a-negtokenresp", neg_init([OID_KRB5], b"x")),
        ("truncated-element", der(0xA1, der(0x30, b"\xa0\x10"))),
        ("elements-reversed", der(0xA1, der(0x30, der(0xA2, der(0x04, b"x")) +
                                              der(0xA0, der(0x0A, b"\x01"))))),
        ("element-of-wrong-type", der(0xA1, der(0x30, der(0xA1, der(0x04, b"x"))))),
        ("unknown-negstate", neg_resp(state=9)),
        ("unknown-mechanism", neg_resp(state=1, mech=OID_UNKNOWN)),
        ("moves-to-ntlm", neg_resp(state=1, mech=OID_NTLM, token=ntlm_challenge())),
        ("kerberos-reply-not-framed", neg_resp(state=0, mech=OID_KRB5, token=b"\x30\x00")),
        ("negstate-reject", neg_resp(state=2))):
    seed(C, "negotiate-kerberos-negtokenresp-" + name, NK + hs(token))
# NTLM CHALLENGE checks (ntlm_check.c): raw NTLM and inside SPNEGO
for path, pname, wrap in ((NTLM, "ntlm", lambda t: t),
                          (NEG_NTLM, "negotiate-ntlm",
                           lambda t: neg_resp(state=1, mech=OID_NTLM, token=t))):
    pb = bytes([path])
    for name, token in (
            ("challenge-too-short", ntlm_header(2) + b"\0" * 20),
            ("challenge-target-name-before-payload", ntlm_challenge(name_field=(10, 8))),
            ("challenge-target-info-before-payload", ntlm_challenge(info_field=(10, 8))),
            ("challenge-target-name-outside", ntlm_challenge(name_field=(10, 4000))),
            ("challenge-empty-target-name", ntlm_challenge(target=b"")),
            ("challenge-odd-unicode-target-name", ntlm_challenge(target=utf16("NEGIO") + b"X")),
            ("negotiate-instead-of-challenge", NTLM_NEGOTIATE),
            ("not-ntlm", b"\x30\x03\x02\x01\x05"),
            ("valid-challenge", ntlm_challenge()),
            # [MS-NLMP] 3.4.5.3 / SECURITY.md 8.4: without NEGOTIATE_128, _56 and KEY_EXCH the
            # sealing key is 40 bits; gss-ntlmssp accepts it, the connector refuses the context
            ("challenge-40-bit-keys", ntlm_challenge(flags=CHALLENGE_FLAGS & ~0xE0000000)),
            # the target info rules of ntlm_check.c (SECURITY.md 8.3: what makes gss-ntlmssp
            # leak) and extended session security
            ("challenge-without-extended-session-security",
             ntlm_challenge(flags=CHALLENGE_FLAGS & ~0x00080000)),
            ("challenge-empty-target-info", ntlm_challenge(info=b"")),
            ("challenge-target-info-pair-outside-its-field",
             ntlm_challenge(info=struct.pack("<HH", 2, 40) + utf16("NEGIO"))),
            ("challenge-target-info-repeats-a-pair",
             ntlm_challenge(info=av_pairs()[:-4] + struct.pack("<HH", 2, 10) + utf16("OTHER") +
                            struct.pack("<HH", 0, 0))),
            ("challenge-target-info-without-its-end", ntlm_challenge(info=av_pairs()[:-4])),
            ("challenge-target-info-end-with-a-value",
             ntlm_challenge(info=av_pairs()[:-4] + struct.pack("<HH", 0, 2) + b"xx"))):
        seed(C, pname + "-" + name, pb + hs(wrap(token)))
    # a client whose context is complete (raw NTLM: after the CHALLENGE) refuses more handshake
    # frames and data before the server's POLICY; a second CHALLENGE inside SPNEGO is one NTLM
    # message too many
    seed(C, pname + "-challenge-then-handshake", pb + hs(wrap(ntlm_challenge())) +
         hs(wrap(ntlm_challenge())))
    seed(C, pname + "-challenge-then-data", pb + hs(wrap(ntlm_challenge())) +
         frame(DATA, b"\0" * 20, level=SIGN))
    seed(C, pname + "-challenge-then-forged-policy", pb + hs(wrap(ntlm_challenge())) +
         frame(POLICY, struct.pack(">I", 16) + b"\0" * 16 + b"\0" * 48, level=SIGN))
    seed(C, pname + "-challenge-then-forged-close", pb + hs(wrap(ntlm_challenge())) +
         frame(CLOSE, struct.pack(">I", 16) + b"\0" * 16 + b"\0\0\0\0", level=SIGN))
    seed(C, pname + "-challenge-then-hs-error", pb + hs(wrap(ntlm_challenge())) +
         hs_error(ntlm_challenge()))
    seed(C, pname + "-hs-error-with-challenge", pb + hs_error(wrap(ntlm_challenge())))
seed(C, "negotiate-ntlm-second-challenge", bytes([NEG_NTLM]) +
     hs(neg_resp(state=1, mech=OID_NTLM, token=ntlm_challenge())) +
     hs(neg_resp(state=0, token=ntlm_challenge())))

# ---- fuzz_established: what a client sends after establishment ------------------------------
E = "fuzz_established"
for path, pname in ((KERBEROS, "kerberos"), (NTLM, "ntlm")):
    pb, pn = bytes([path]), bytes([path | NONE_OK])
    # a message in two unprotected fragments, delivered whole; then a CLOSE inside a message
    seed(E, pname + "-none-fragments", pn + frame(DATA, b"frag", flags=MORE) +
         frame(DATA, b"ment") + frame(DATA, b"again"))
    seed(E, pname + "-close-inside-a-message", pn + frame(DATA, b"frag", flags=MORE) +
         frame(CLOSE, b"\0" * 24, level=SIGN))
    seed(E, pname + "-none-below-the-minimum", pb + frame(DATA, b"plain"))
    seed(E, pname + "-handshake-after-establishment", pb + hs(NTLM_NEGOTIATE))
    seed(E, pname + "-hs-error-after-establishment", pb + hs_error(b"", b"forged"))
    seed(E, pname + "-second-policy", pb + frame(POLICY, b"\0" * 64, level=SIGN))
    seed(E, pname + "-close-over-its-limit", pb + frame(CLOSE, b"", level=SIGN, length=100000))
    seed(E, pname + "-data-over-max-frame", pb + frame(DATA, b"", level=SEAL, length=1048577))
    seed(E, pname + "-sign-without-mic-length", pb + frame(DATA, b"\0\0", level=SIGN))
    seed(E, pname + "-sign-with-short-mic", pb + frame(DATA, struct.pack(">I", 8) + b"\0" * 12,
                                                       level=SIGN))
    seed(E, pname + "-seal-too-short", pb + frame(DATA, b"\0" * 12, level=SEAL))
    seed(E, pname + "-seal-garbage", pb + frame(DATA, b"\0" * 64, level=SEAL))
    seed(E, pname + "-close-forged", pb + frame(CLOSE, struct.pack(">I", 16) + b"\0" * 20,
                                                level=SIGN))
# Kerberos per-message tokens with well-formed RFC 4121 4.2.6 headers (from the initiator, with
# the acceptor's subkey) and checksums made with no key: they fail as altered (GSS_S_BAD_SIG),
# not as malformed
pb = bytes([KERBEROS])
mic_token = bytes.fromhex("0404" "04" "ffffffffff") + struct.pack(">Q", 0) + b"\x5a" * 12
seed(E, "kerberos-sign-rfc4121-mic-without-key",
     pb + frame(DATA, struct.pack(">I", len(mic_token)) + mic_token + b"hello", level=SIGN))
wrap_token = bytes.fromhex("0504" "06" "ff" "0000" "0000") + struct.pack(">Q", 0) + b"\xa5" * 60
seed(E, "kerberos-seal-rfc4121-wrap-without-key", pb + frame(DATA, wrap_token, level=SEAL))

# ---- fuzz_sample: the gss-sample profile (first byte: path, | 4 for the server role) ---------
A = "fuzz_sample"
sv = bytes([NTLM | SERVER])
seed(A, "server-noop-asks-no-authentication", sv + sample_token(0x01))
seed(A, "server-bad-opening", sv + sample_token(0x02, b"x"))
seed(A, "server-empty-context-token", sv + sample_token(0x11) + sample_token(0x02))
seed(A, "server-data-before-context", sv + sample_token(0x11) + sample_token(0x04, b"x"))
seed(A, "server-token-over-max-token", sv + sample_token(0x11) + sample_token(0x02, length=70000))
seed(A, "server-stream-ends-inside-a-token", sv + sample_token(0x11) +
     sample_token(0x02, NTLM_NEGOTIATE[:10], length=40))
seed(A, "server-stream-ends-inside-a-header", sv + sample_token(0x11) + b"\x02\0")
cl = bytes([NTLM])
seed(A, "client-challenge-then-noop", cl + sample_token(0x02, ntlm_challenge()) +
     sample_token(0x01))
seed(A, "client-challenge-then-unexpected-flags", cl + sample_token(0x02, ntlm_challenge()) +
     sample_token(0x04, b"x"))
seed(A, "client-challenge-then-mic", cl + sample_token(0x02, ntlm_challenge()) +
     sample_token(0x08, b"\0" * 16))
# a MIC shorter than any mechanism's: refused before gss_verify_mic (gss-ntlmssp reads 16 bytes)
seed(A, "client-challenge-then-short-mic", cl + sample_token(0x02, ntlm_challenge()) +
     sample_token(0x08, b"\x5a" * 4))


# ---- fuzz_nns: the [MS-NNS] profile (first byte: path, | 4 for the server role, bits 3-4 the
# level: 0 seal, 1 sign, 2 none)
def nns_hs(mid, payload=b"", length=None):
    """[MS-NNS] 2.2.1: [MessageId][1][0][size, high byte first][AuthPayload]."""
    n = len(payload) if length is None else length
    return struct.pack(">BBBH", mid, 1, 0, n) + payload


def nns_data(payload=b"", length=None):
    """[MS-NNS] 2.2.2: [PayloadSize u32 LE][Payload]."""
    n = len(payload) if length is None else length
    return struct.pack("<I", n) + payload


IN_PROGRESS, DONE, ERROR = 0x16, 0x14, 0x15
N = "fuzz_nns"
sv = bytes([NTLM | SERVER])
seed(N, "server-unknown-message-id", sv + nns_hs(0x17, b"x"))
seed(N, "server-empty-token", sv + nns_hs(IN_PROGRESS))
seed(N, "server-token-over-max-token", sv + nns_hs(IN_PROGRESS, length=0xFFFF))
seed(N, "server-negotiate-then-error", sv + nns_hs(IN_PROGRESS, NTLM_NEGOTIATE) +
     nns_hs(ERROR, struct.pack("<II", 0x8009030C, 0xFFFFFFFF)))
seed(N, "server-negotiate-then-empty-done", sv + nns_hs(IN_PROGRESS, NTLM_NEGOTIATE) +
     nns_hs(DONE))
seed(N, "server-stream-ends-inside-a-header", sv + b"\x16\x01\x00")
seed(N, "server-stream-ends-inside-a-token", sv + nns_hs(IN_PROGRESS, NTLM_NEGOTIATE[:10],
                                                            length=40))
cl = bytes([NTLM])
seed(N, "client-error-short", cl + nns_hs(ERROR, b"\x01\x02\x03\x04"))
seed(N, "client-error-trust-failure-netfx", cl + nns_hs(ERROR, struct.pack(">Q", 0x6FE)))
# SEC_E_BAD_BINDINGS as .NET 8 writes it (Int64 little-endian, sign-extended): NEGIO_ERR_BINDING
seed(N, "client-error-bad-bindings", cl + nns_hs(ERROR, struct.pack("<q", -0x7FF6FCBA)))
seed(N, "client-challenge-then-empty-done", cl + nns_hs(IN_PROGRESS, ntlm_challenge()) +
     nns_hs(DONE))
seed(N, "client-challenge-then-done-then-data", cl + nns_hs(IN_PROGRESS, ntlm_challenge()) +
     nns_hs(DONE) + nns_data(b"\x01\x00\x00\x00" + b"\x00" * 12 + b"forged"))
seed(N, "client-challenge-then-done-then-short-data", cl + nns_hs(IN_PROGRESS, ntlm_challenge()) +
     nns_hs(DONE) + nns_data(b"x"))
seed(N, "client-challenge-then-done-then-huge-data", cl + nns_hs(IN_PROGRESS, ntlm_challenge()) +
     nns_hs(DONE) + nns_data(length=0x10001))
seed(N, "client-none-challenge-then-done-then-bytes", bytes([NTLM | 2 << 3]) +
     nns_hs(IN_PROGRESS, ntlm_challenge()) + nns_hs(DONE) + b"unframed")
seed(N, "client-kerberos-done-without-a-token", bytes([KERBEROS]) + nns_hs(DONE))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    names = set()
    for target, name, data in SEEDS:
        assert (target, name) not in names, name
        names.add((target, name))
        os.makedirs(os.path.join(out, target), exist_ok=True)
        with open(os.path.join(out, target, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} hand-made seeds written to {out}")


if __name__ == "__main__":
    main()
