#!/usr/bin/python3
"""Writes the seeds of fuzz_ldap_resp (corpus/ldap_resp/): a call byte, then what a
domain controller would send for it (BER, RFC 4511), in the order the provider asks.
The directory also keeps what the fuzzer found (bad-length, type-past-int-max), which
no seed here makes.
  tests/fuzz/ldap_seeds.py [DIR]
"""
import os
import struct
import sys

DISABLE, ENABLE, FORCE, UNDO, CLEAR, LIST, CHANGES, CHANGES_CURSOR = range(8)
PAGED = b"1.2.840.113556.1.4.319"


def tlv(tag, body):
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def integer(tag, v):
    return tlv(tag, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def octets(v):
    return tlv(0x04, v if isinstance(v, bytes) else v.encode())


def message(msgid, op, controls=b""):
    return tlv(0x30, integer(0x02, msgid) + op + controls)


def result(tag, code=0, diag=""):
    return tlv(tag, integer(0x0A, code) + octets("") + octets(diag))


def entry(dn, attrs):
    parts = b"".join(tlv(0x30, octets(k) + tlv(0x31, b"".join(octets(v) for v in vals)))
                     for k, vals in attrs.items())
    return tlv(0x64, octets(dn) + tlv(0x30, parts))


def paged(cookie):
    value = tlv(0x30, integer(0x02, 0) + octets(cookie))
    return tlv(0xA0, tlv(0x30, octets(PAGED) + octets(value)))


def sid(rid):
    return bytes([1, 5, 0, 0, 0, 0, 0, 5]) + struct.pack("<5I", 21, 1, 2, 3, rid)


def guid(n):
    return bytes(range(n, n + 16))


def user(n, uac="512", pls="132000000000000000"):
    return entry(f"CN=User {n},CN=Users,DC=corp,DC=test",
                 {"userAccountControl": [uac], "pwdLastSet": [pls]})


def listed(n, uac="512"):
    return entry(f"CN=User {n},CN=Users,DC=corp,DC=test", {
        "objectGUID": [guid(n)], "objectSid": [sid(1100 + n)],
        "sAMAccountName": [f"user{n}"], "userPrincipalName": [f"user{n}@corp.test"],
        "displayName": [f"User {n}"], "userAccountControl": [uac],
        "mail": [f"user{n}@corp.test"]})


def done(msgid, code=0, diag="", controls=b""):
    return message(msgid, result(0x65, code, diag), controls)


def modified(msgid, code=0, diag=""):
    return message(msgid, result(0x67, code, diag))


def rootdse(msgid):
    return (message(msgid, entry("", {"dsServiceName": ["CN=NTDS Settings,CN=DC1"],
                                      "highestCommittedUSN": ["9"]})) + done(msgid))


SEEDS = {
    # A disable: the read, then the compare-and-swap.
    "disable": bytes([DISABLE]) + message(1, user(1)) + done(1) + modified(2),
    "enable-already": bytes([ENABLE]) + message(1, user(1)) + done(1),
    # A race lost (noSuchAttribute), read again, won.
    "disable-race": bytes([DISABLE]) + message(1, user(1)) + done(1) +
    modified(2, 16, "00002080: AtrErr") + message(3, user(1, "514")) + done(3),
    "force-dont-expire": bytes([FORCE]) + message(1, user(1, "66048")) + done(1),
    "force-clear": bytes([CLEAR]) + message(1, user(1, "66048")) + done(1) +
    modified(2),
    "undo": bytes([UNDO]) + message(1, user(1, "512", "0")) + done(1) + modified(2),
    "not-found": bytes([DISABLE]) + done(1),
    "two-found": bytes([DISABLE]) + message(1, user(1)) + message(1, user(2)) +
    done(1),
    # An answer of type 0, which ldap_result returns as 0: a timeout to the caller,
    # whose message was left unfreed.
    "type-zero": bytes([DISABLE]) + message(1, user(1)) + message(1, bytes([0, 0])),
    "busy": bytes([DISABLE]) + done(1, 51, "busy"),
    # Two steps on one connection: both reads out, answered out of order.
    "batch": bytes([DISABLE + 8]) + message(2, user(2)) + done(2) +
    message(1, user(1)) + done(1) + modified(4) + modified(3),
    # The server's notice that it is leaving (message id 0).
    "notice": bytes([DISABLE]) + message(0, tlv(0x78, integer(0x0A, 52) + octets("") +
                                                octets("bye") +
                                                tlv(0x8A, b"1.3.6.1.4.1.1466.20036"))),
    "list": bytes([LIST]) + message(1, listed(1)) + message(1, listed(2, "514")) +
    done(1, controls=paged(b"next")) + message(2, listed(3)) +
    done(2, controls=paged(b"")),
    # A paged results control without its value (liblber's ber_init asserted).
    "list-paged-no-value": bytes([LIST]) + message(1, listed(1)) +
    done(1, controls=tlv(0xA0, tlv(0x30, octets(PAGED)))),
    # A message announcing 4 GiB: liblber allocated it as announced (now refused
    # past ad.c's MESSAGE_MAX).
    "huge-length": bytes([LIST]) + bytes([0x30, 0x84, 0xF0, 0x00, 0x00, 0x00, 0x02]),
    "list-malformed": bytes([LIST]) + message(1, entry("CN=x", {"objectGUID": [b"short"]})) +
    done(1),
    "changes": bytes([CHANGES]) + rootdse(1) +
    message(2, entry("CN=NTDS Settings,CN=DC1", {"invocationId": [guid(7)]})) + done(2) +
    message(3, listed(1)) + done(3),
    "changes-cursor": bytes([CHANGES_CURSOR]) + rootdse(1) + done(2, 32) +
    message(3, listed(4)) + done(3),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "corpus", "ldap_resp")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
