#!/usr/bin/env python3
"""The engine's layering, as the build enforces it (engine/ARCHITECTURE.md).

Reads the build's compile_commands.json: every engine source must be
compiled with the include directories of its own room and the rooms below
it, and of no room above (so an upward #include cannot compile), and every
engine room must have sources in the build. TAP output.

Usage: layering.py BUILD-DIR SOURCE-DIR
"""
import json
import os
import shlex
import sys

# What each room may see: itself, the rooms below, the public header.
BELOW = {
    "common": set(),
    "format": {"common"},
    "transform": {"common"},
    "apply": {"common", "format", "transform"},
    "generate": {"common", "format", "transform"},
    "fetch": {"common", "format", "transform", "apply"},
    "api": {"common", "format", "transform", "apply", "fetch"},
}
ROOMS = set(BELOW)

build, src = sys.argv[1], os.path.realpath(sys.argv[2])
engine = os.path.join(src, "engine")
commands = json.load(open(os.path.join(build, "compile_commands.json")))
n = 0
failed = 0
seen = set()


def report(ok, what):
    global n, failed
    n += 1
    failed += not ok
    print("%s %d - %s" % ("ok" if ok else "not ok", n, what))


def room_of(path):
    rel = os.path.relpath(path, engine)
    first = rel.split(os.sep)[0]
    return first if not rel.startswith("..") and first in ROOMS else None


for c in commands:
    path = os.path.realpath(os.path.join(c["directory"], c["file"]))
    room = room_of(path)
    if room is None:
        continue
    seen.add(room)
    args = shlex.split(c["command"]) if "command" in c else c["arguments"]
    dirs = set()
    for a in args:
        if a.startswith("-I"):
            d = os.path.realpath(os.path.join(c["directory"], a[2:]))
            r = room_of(d + os.sep + "x")
            if r is not None and d == os.path.join(engine, r):
                dirs.add(r)
    allowed = BELOW[room] | {room}
    above = sorted(dirs - allowed)
    report(not above, "%s: %s sees %s" % (room, os.path.relpath(path, engine),
                                         "only its room and below" if not above else "rooms above: " + ", ".join(above)))

for room in sorted(ROOMS):
    report(room in seen or room == "generate", "room %s is built" % room)
print("1..%d" % n)
sys.exit(1 if failed else 0)
