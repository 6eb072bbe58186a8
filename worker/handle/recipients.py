"""Recognise an age X25519 recipient: ``age1`` + bech32 data, checksum included (BIP 173).

A recipient with a typo is refused as a parameter, before age runs, rather than reported by
age as a failed run.
"""

from __future__ import annotations

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_PAYLOAD_CHARS = 58  # 32 key bytes in 5-bit groups (52) + the 6-character checksum


def _polymod(values: list[int]) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate(_GENERATOR):
            if (top >> bit) & 1:
                check ^= generator
    return check


def is_age_recipient(text: str) -> bool:
    """True if ``text`` is a well-formed age X25519 recipient (lower case, checksum valid)."""
    hrp, separator, data = text.rpartition("1")
    if hrp != "age" or not separator or len(data) != _PAYLOAD_CHARS:
        return False
    if any(c not in _CHARSET for c in data):
        return False
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    return _polymod(expanded + [_CHARSET.index(c) for c in data]) == 1
