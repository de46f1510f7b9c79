"""The ACLs people write, and the credentials that match them.

Every recipe takes ``acl=``: a list of kazoo ``ACL`` entries applied to each node it creates.
These helpers make those entries from an identity and a permission string of the letters
``r`` (read), ``w`` (write), ``c`` (create children), ``d`` (delete children) and ``a``
(change the ACL), as ZooKeeper's own command line writes them::

    from zksync import acl
    guarded = [acl.x509("CN=deployer", "rwcda"), acl.world("r")]
    lock = zksync.RWMutex(client, "/app/lock", acl=guarded)

    client = zksync.connect(hosts, auth_data=[acl.digest_credentials("alice", password)])
    client = zksync.connect(hosts, sasl_options=acl.sasl_credentials("alice", password))  # pure-sasl
    mine = [acl.creator("rwcda"), acl.world("r")]      # whoever this client authenticated as

``digest`` is ZooKeeper's user-and-password scheme (the ACL holds ``user:base64(sha1(user:password))``,
never the password); ``x509`` names a TLS client certificate's subject, as ZooKeeper's
``X509AuthenticationProvider`` reports it (``CN=alice`` for a subject holding only a common name;
the server log's "Authenticated Id" line shows it); ``sasl`` a Kerberos or DIGEST-MD5 principal;
``creator`` the identities of the client that creates the node (ZooKeeper's ``auth`` scheme:
the server puts every identity the creating session authenticated with in its place, and refuses
the create when it has none); ``ip`` a client address or network; ``world`` everybody.
"""

from __future__ import annotations

import base64
import hashlib

from kazoo.security import ACL, Id, Permissions

from .errors import InvalidArgument

__all__ = [
    "ACL",
    "creator",
    "digest",
    "digest_credentials",
    "ip",
    "permissions",
    "sasl",
    "sasl_credentials",
    "world",
    "x509",
]

_LETTERS = {
    "r": Permissions.READ,
    "w": Permissions.WRITE,
    "c": Permissions.CREATE,
    "d": Permissions.DELETE,
    "a": Permissions.ADMIN,
}


def permissions(perms: str) -> int:
    """The permission bits of a string such as ``"rw"`` or ``"rwcda"`` (each letter at most once)."""
    if not isinstance(perms, str) or not perms:
        raise InvalidArgument(f"permissions must be a non-empty string of the letters rwcda, got {perms!r}")
    unknown = sorted(set(perms) - set(_LETTERS))
    if unknown:
        raise InvalidArgument(f"permissions {perms!r}: unknown letter(s) {', '.join(unknown)} (use r, w, c, d, a)")
    if len(set(perms)) != len(perms):
        raise InvalidArgument(f"permissions {perms!r}: a letter is repeated")
    bits = 0
    for letter in perms:
        bits |= _LETTERS[letter]
    return bits


def _text(what: str, value: object) -> str:
    if not isinstance(value, str) or not value or value != value.strip():
        raise InvalidArgument(f"{what} must be a non-empty string without surrounding spaces")
    return value


def _user(user: object) -> str:
    name = _text("a digest user name", user)
    if ":" in name:
        raise InvalidArgument(f"a digest user name cannot hold ':', got {name!r}")
    return name


def _password(password: object) -> str:
    if not isinstance(password, str) or not password:
        raise InvalidArgument("a digest password must be a non-empty string")  # never echo it
    return password


def digest(user: str, password: str, perms: str = "rwcda") -> ACL:
    """An ACL entry for the digest identity ``user`` with ``password`` (only its hash is kept)."""
    name, secret = _user(user), _password(password)
    hashed = base64.b64encode(hashlib.sha1(f"{name}:{secret}".encode()).digest()).decode()
    return ACL(permissions(perms), Id("digest", f"{name}:{hashed}"))


def digest_credentials(user: str, password: str) -> tuple[str, str]:
    """The ``auth_data`` entry that authenticates as ``user`` (``connect(auth_data=[...])``)."""
    return ("digest", f"{_user(user)}:{_password(password)}")


def sasl_credentials(user: str, password: str, mechanism: str = "DIGEST-MD5") -> dict[str, str]:
    """The ``sasl_options`` that authenticate as ``user`` (``connect(sasl_options=...)``; needs
    the ``pure-sasl`` package); the ACL entry for that identity is :func:`sasl` of ``user``."""
    if mechanism not in ("DIGEST-MD5", "PLAIN"):  # GSSAPI takes a principal and a keytab, not a password
        raise InvalidArgument(f"sasl_credentials: mechanism DIGEST-MD5 or PLAIN, got {mechanism!r}")
    return {"mechanism": mechanism, "username": _user(user), "password": _password(password)}


def x509(subject: str, perms: str = "rwcda") -> ACL:
    """An ACL entry for the TLS client certificate whose subject is ``subject`` (``"CN=alice"``)."""
    return ACL(permissions(perms), Id("x509", _text("an x509 subject", subject)))


def sasl(principal: str, perms: str = "rwcda") -> ACL:
    """An ACL entry for the SASL principal ``principal`` (``"alice"``, or ``"zk/host@REALM"``)."""
    return ACL(permissions(perms), Id("sasl", _text("a SASL principal", principal)))


def ip(address: str, perms: str = "rwcda") -> ACL:
    """An ACL entry for clients from ``address`` (an IP address, or a network ``10.0.0.0/8``)."""
    return ACL(permissions(perms), Id("ip", _text("an IP address", address)))


def creator(perms: str = "rwcda") -> ACL:
    """An ACL entry for the identities the creating client authenticated with (by digest, x509
    or SASL): the server replaces it with them."""
    return ACL(permissions(perms), Id("auth", ""))


def world(perms: str = "r") -> ACL:
    """An ACL entry for everybody (``perms`` defaults to read only)."""
    return ACL(permissions(perms), Id("world", "anyone"))
