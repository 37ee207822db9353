"""Team membership for weight messages: an HMAC-SHA256 tag with a shared team key (no ROS imports).

The PyPI ROS 2 wheels' Fast DDS has no DDS-Security plugins, and anyone on the domain can read a
robot's weights topic (fingerprint included) and publish on it. So every ``WeightUpdate`` carries
``auth_tag = HMAC-SHA256(team key, every other field)``; a receiver recomputes it and drops a
message whose tag is missing or wrong (``unauthenticated``) before looking at anything else.
Round, sender, session, acknowledgements, delta base and payload are all covered, so a forger can neither
write weights nor re-tag a member's message for another round or sender. The "still waiting"
signals (``RoundWaiting``, :mod:`dinno_ros.round_waiting`) are signed the same way over all their
fields, under a domain string of their own. (It does not hide the
weights: for confidentiality use SROS2 enclaves where the DDS security plugins exist, see the
README.)

Key file: the key as hex (at least 32 hex digits, i.e. 128 bit; ``python -m
dinno_ros.message_auth generate PATH`` writes a 256-bit one), readable by its owner only
(``chmod 600``), named by the ``team_key_file`` parameter (or, when that is empty, the
``DINNO_TEAM_KEY_FILE`` environment variable). Without one the node refuses to start unless
``auth`` is explicitly ``open``. ``dinno-team`` gives a team without one ``<results>/team.key``.
"""

from __future__ import annotations

import array
import hashlib
import hmac
import math
import os
import secrets
import stat
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dinno_core.config import ConfigError

TAG_BYTES = 32
MIN_KEY_BYTES = 16
TEAM_KEY_ENV = "DINNO_TEAM_KEY_FILE"
"""Environment variable naming the key file when the ``team_key_file`` parameter is empty."""
AUTH_MODES = ("hmac", "open")
"""``hmac``: every message signed and verified with the team key; ``open``: no tags (trusted networks only)."""
_DOMAIN = b"dinno_msgs/WeightUpdate/hmac-sha256/v1\0"
_HEADER = struct.Struct("<IQIBHBQB")
_WAITING_DOMAIN = b"dinno_msgs/RoundWaiting/hmac-sha256/v1\0"
_WAITING = struct.Struct("<IQQI")


class TeamKey:
    """The shared secret of one team; signs and verifies ``WeightUpdate`` fields."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a team key needs at least {MIN_KEY_BYTES} bytes, got {len(key)}")
        self._key = bytes(key)

    @classmethod
    def from_file(cls, path: str | Path, parameter: str = "team_key_file") -> TeamKey:
        """Read a key file; every problem is one :class:`ConfigError` naming ``parameter`` and the file."""
        where = f"parameter '{parameter}': {path}"
        if not str(path):
            raise ConfigError(f"parameter '{parameter}' is empty")
        path = Path(path)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise ConfigError(f"{where} does not exist (create one with: python -m dinno_ros.message_auth "
                              f"generate {path})") from None
        except OSError as error:
            raise ConfigError(f"{where} cannot be read ({error.strerror})") from None
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{where} is not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(f"{where} is readable by others (mode {stat.S_IMODE(info.st_mode):03o}); "
                              f"run: chmod 600 {path}")
        try:
            text = path.read_text(encoding="ascii").strip()
            key = bytes.fromhex(text)
        except (UnicodeDecodeError, ValueError):
            raise ConfigError(f"{where} does not hold a hex key") from None
        except OSError as error:
            raise ConfigError(f"{where} cannot be read ({error.strerror})") from None
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"{where} holds a {len(key) * 8}-bit key; at least {MIN_KEY_BYTES * 8} bits "
                              f"({2 * MIN_KEY_BYTES} hex digits) are needed")
        return cls(key)

    def tag(self, msg: Any) -> bytes:
        """The HMAC-SHA256 of every field of ``msg`` but ``auth_tag`` and ``header``."""
        mac = hmac.new(self._key, _DOMAIN, hashlib.sha256)
        _update_text(mac, msg.sender)
        mac.update(_HEADER.pack(int(msg.round), int(msg.fingerprint), int(msg.num_params), int(msg.num_vectors),
                                int(msg.degree), int(msg.encoding), int(msg.session), int(msg.ack_span)))
        robots = list(msg.ack_robots)
        bits = list(msg.ack_bits)
        mac.update(struct.pack("<II", len(robots), len(bits)))
        for robot in robots:
            _update_text(mac, robot)
        mac.update(struct.pack(f"<{len(bits)}I", *bits))
        mac.update(struct.pack("<dq", float(getattr(msg, "rho", math.nan)), int(getattr(msg, "delta_base", -1))))
        payload = msg.payload
        mac.update(struct.pack("<Q", len(payload)))
        mac.update(memoryview(payload).cast("B") if not isinstance(payload, (bytes, bytearray)) else payload)
        return mac.digest()

    def sign(self, msg: Any) -> None:
        """Set ``msg.auth_tag``."""
        msg.auth_tag = _tag_array(self.tag(msg))

    def verify(self, msg: Any) -> bool:
        """Whether ``msg.auth_tag`` is this key's tag of ``msg`` (constant-time comparison)."""
        return _tag_matches(msg.auth_tag, self.tag(msg))

    def waiting_tag(self, msg: Any) -> bytes:
        """The HMAC-SHA256 of a ``RoundWaiting`` signal's fields but ``auth_tag`` and ``header``
        (its own domain string: a weight message's tag never verifies a signal, nor the reverse)."""
        mac = hmac.new(self._key, _WAITING_DOMAIN, hashlib.sha256)
        _update_text(mac, msg.sender)
        mac.update(_WAITING.pack(int(msg.round), int(msg.fingerprint), int(msg.session), int(msg.beat)))
        return mac.digest()

    def sign_waiting(self, msg: Any) -> None:
        """Set a ``RoundWaiting`` signal's ``auth_tag``."""
        msg.auth_tag = _tag_array(self.waiting_tag(msg))

    def verify_waiting(self, msg: Any) -> bool:
        """Whether a ``RoundWaiting`` signal's ``auth_tag`` is this key's tag of it."""
        return _tag_matches(msg.auth_tag, self.waiting_tag(msg))


def _update_text(mac: Any, text: Any) -> None:
    """A string field, length first (so no two field lists hash alike)."""
    data = str(text).encode()
    mac.update(struct.pack("<I", len(data)))
    mac.update(data)


def _tag_array(digest: bytes) -> array.array:
    """A tag as the message's ``uint8[]`` field wants it."""
    tag = array.array("B")
    tag.frombytes(digest)
    return tag


def _tag_matches(received: Any, expected: bytes) -> bool:
    received = bytes(received)
    return len(received) == TAG_BYTES and hmac.compare_digest(received, expected)


def write_team_key(path: str | Path) -> Path:
    """Write a new random 256-bit key as hex, readable by its owner only. Refuses to overwrite."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(secrets.token_hex(32) + "\n")
    return path


def needs_team_key(parameters: Mapping[str, Any], env: Mapping[str, str]) -> bool:
    """Whether a team started on one host must be given a key: neither its robot parameters
    (``team_key_file``) nor the environment (``DINNO_TEAM_KEY_FILE``) name one, and it is not
    ``auth: open``."""
    return not (env.get(TEAM_KEY_ENV) or parameters.get("team_key_file") or parameters.get("auth") == "open")


def provide_team_key(parameters: Mapping[str, Any], env: Mapping[str, str], out_dir: str | Path) -> Path | None:
    """The key file a team started on one host shares, or None when it needs none from us.

    None when the team's robot parameters (``team_key_file``) or the environment
    (``DINNO_TEAM_KEY_FILE``) already name a key, or the team runs with ``auth: open``;
    otherwise ``<out_dir>/team.key``, created once (mode 600) and kept for later runs.
    """
    if not needs_team_key(parameters, env):
        return None
    path = Path(out_dir) / "team.key"
    if not path.exists():
        write_team_key(path)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "generate":
        print("usage: python -m dinno_ros.message_auth generate PATH", file=sys.stderr)
        return 2
    try:
        write_team_key(args[1])
    except FileExistsError:
        print(f"{args[1]} exists; not overwriting a team key", file=sys.stderr)
        return 1
    print(f"wrote a 256-bit team key to {args[1]} (mode 600); give every robot of the team a copy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
