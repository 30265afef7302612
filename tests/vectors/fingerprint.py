#!/usr/bin/env python3
"""Checks tests/vectors/fingerprint.json with nothing but Python's hashlib.

The card fingerprint of protocol v2 (docs/protocol.md §10.1), computed here
independently of the Rust (src/format/card.rs) and JavaScript
(web/js/fingerprint.js) implementations, which read the same file:

    python3 tests/vectors/fingerprint.py          # check every vector
    python3 tests/vectors/fingerprint.py --write  # rewrite the expected values

Only `--write` changes the file, and only when the protocol changes.
"""

import hashlib
import json
import pathlib
import struct
import sys

FILE = pathlib.Path(__file__).with_name("fingerprint.json")
LABEL = b"meldkluis-card-fingerprint-v2\n"


def slugify(name):
    """protocol.md §5: ASCII letters and digits, the rest one dash, at most 63."""
    out = ""
    for c in name.lower():
        if c.isascii() and c.isalnum():
            out += c
        elif out and not out.endswith("-"):
            out += "-"
    return out[:63].rstrip("-")


def effective_org(card):
    return card["org"] if "org" in card else slugify(card["organisation"])


def digest(card):
    h = hashlib.sha256(LABEL)
    for value in (
        card["id"],
        effective_org(card),
        card["name"],
        card["organisation"],
        card["kind"],
        card.get("description", ""),
        card.get("lang", ""),
        card["age_recipient"],
        card["signing_key"],
    ):
        data = value.encode("utf-8")
        h.update(struct.pack(">I", len(data)) + data)
    return h.digest()


def digit_groups(d):
    return " ".join(
        "%05d" % (int.from_bytes(d[5 * i : 5 * i + 5], "big") % 100000) for i in range(6)
    )


def main():
    vectors = json.loads(FILE.read_text(encoding="utf-8"))
    writing = "--write" in sys.argv[1:]
    by_name = {}
    for v in vectors["cards"]:
        d = digest(v["card"])
        expected = {"org": effective_org(v["card"]), "digest_hex": d.hex(), "fingerprint": digit_groups(d)}
        if writing:
            v.update(expected)
        else:
            for key, value in expected.items():
                assert v[key] == value, f"{v['name']}: {key} is {v[key]!r}, hashlib says {value!r}"
        by_name[v["name"]] = v
    # Cards that differ in one field have different fingerprints; those
    # declared the same (an explicit org equal to the derived one, an
    # explicit empty description) have the same.
    for v in vectors["cards"]:
        if "same_as" in v:
            assert v["fingerprint"] == by_name[v["same_as"]]["fingerprint"], v["name"]
        if "changed" in v:
            base = by_name[v["changed"]["from"]]
            assert v["fingerprint"] != base["fingerprint"], v["name"]
    prints = {v["fingerprint"] for v in vectors["cards"] if "same_as" not in v}
    assert len(prints) == sum(1 for v in vectors["cards"] if "same_as" not in v)
    if writing:
        FILE.write_text(json.dumps(vectors, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(vectors['cards'])} card fingerprints agree with hashlib")


if __name__ == "__main__":
    main()
