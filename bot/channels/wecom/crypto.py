"""The WeCom callback crypto (wecom.md §1.3–1.5): wechatpy's AES cipher, with the checks
wechatpy skips (wecom.md §2.2): a constant-time signature compare, strict base64, PKCS#7 to
32-byte blocks with its bounds checked, the length prefix checked, the receive id checked.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct

from wechatpy.crypto.base import WeChatCipher


class CallbackError(Exception):
    """A callback we refuse; ``status`` is the HTTP answer (403 for a bad signature, else 400)."""

    status = 400


class BadSignature(CallbackError):
    status = 403


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """sha1 over the four strings sorted and joined (wecom.md §1.3)."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


class CallbackCrypto:
    """Requires the 43-character EncodingAESKey and the receive id (the CorpID for an app)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9]{43}", encoding_aes_key):
            raise ValueError("EncodingAESKey must be 43 letters and digits")
        self.token = token
        self.key = base64.b64decode(encoding_aes_key + "=")
        self.receive_id = receive_id.encode()
        self._cipher = WeChatCipher(self.key)

    def check(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        expected = signature(self.token, timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected.encode(), msg_signature.lower().encode()):
            raise BadSignature("signature does not match")

    def decrypt(self, encrypt: str) -> bytes:
        """The message inside ``encrypt``: random(16) ‖ len(4, big-endian) ‖ msg ‖ receive id."""
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise CallbackError("Encrypt is not valid base64") from None
        if not raw or len(raw) % 16:
            raise CallbackError("Encrypt is not whole AES blocks")
        plain = self._cipher.decrypt(raw)
        pad = plain[-1]
        # WeCom pads to 32 bytes, not the 16 of the AES block: a pad byte is 1..32.
        if not 1 <= pad <= 32 or plain[-pad:] != bytes([pad]) * pad:
            raise CallbackError("bad padding")
        body = plain[16:-pad]
        if len(body) < 4:
            raise CallbackError("message too short")
        (length,) = struct.unpack(">I", body[:4])
        if length > len(body) - 4:
            raise CallbackError("message length exceeds the payload")
        message, receive_id = body[4 : 4 + length], body[4 + length :]
        if not hmac.compare_digest(receive_id, self.receive_id):
            raise CallbackError("message is for another receiver (receive id)")
        return message
