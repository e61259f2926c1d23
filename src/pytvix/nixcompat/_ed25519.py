"""Pure-Python edwards25519 point checks needed for strict ed25519 verification.

OpenSSL (behind ``cryptography``) verifies ``[S]B == R + [k]A`` but accepts small-order public
keys and ``R`` values; ed25519-dalek's ``verify_strict`` rejects them. Decoding follows
curve25519-dalek: the y coordinate is reduced mod p and a set sign bit on x = 0 is no error.

There are exactly eight points of order dividing 8; their y coordinates are 1, -1, 0 and
+-Y8. :func:`is_small_order` therefore only compares y (fast, no exponentiation);
:func:`order_divides_8` is the generic ``[8]P == identity`` check used to cross-check it.
"""

from __future__ import annotations

__all__ = [
    "GROUP_ORDER",
    "decode_point",
    "is_canonical_scalar",
    "is_small_order",
    "order_divides_8",
]

P = 2**255 - 19
D = (-121665 * pow(121666, -1, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
_Y_MASK = (1 << 255) - 1

# y of the order-8 points (the other two have y = P - _Y8).
_Y8 = int.from_bytes(
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"
)
_SMALL_ORDER_Y = frozenset({0, 1, P - 1, _Y8, P - _Y8})

# Extended coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, xy = T/Z.
Point = tuple[int, int, int, int]


def decode_point(encoded: bytes) -> Point | None:
    """Decode a 32-byte point encoding; ``None`` if it is not on the curve."""
    if len(encoded) != 32:
        return None
    raw = int.from_bytes(encoded, "little")
    sign = raw >> 255
    y = (raw & _Y_MASK) % P
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    # x = sqrt(u/v) = u v^3 (u v^7)^((p-5)/8), times sqrt(-1) if needed (RFC 8032 5.1.3).
    v3 = v * v * v % P
    x = u * v3 * pow(u * v3 * v3 * v % P, (P - 5) // 8, P) % P
    vx2 = v * x * x % P
    if vx2 != u:
        if vx2 != (P - u) % P:
            return None
        x = x * SQRT_M1 % P
    if (x & 1) != sign:
        x = (P - x) % P
    return (x, y, 1, x * y % P)


def _double(p: Point) -> Point:
    x1, y1, z1, _ = p
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = (a + b) % P
    e = (h - (x1 + y1) * (x1 + y1)) % P
    g = (a - b) % P
    f = (c + g) % P
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def order_divides_8(point: Point) -> bool:
    """True if ``[8]point`` is the identity."""
    for _ in range(3):
        point = _double(point)
    x, y, z, _ = point
    return x == 0 and y == z


def is_small_order(encoded: bytes) -> bool:
    """True if ``encoded`` (32 bytes) encodes a point of order dividing 8.

    Canonical and non-canonical encodings count alike (y is reduced mod p). Every y in the
    small-order set decodes, so this needs no square root.
    """
    if len(encoded) != 32:
        return False
    return (int.from_bytes(encoded, "little") & _Y_MASK) % P in _SMALL_ORDER_Y


def is_canonical_scalar(encoded: bytes) -> bool:
    """True if the 32-byte little-endian scalar ``encoded`` is below the group order."""
    return len(encoded) == 32 and int.from_bytes(encoded, "little") < GROUP_ORDER
