#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Check that the layering src/meson.build declares is the one the build enforces.

The build refuses a wrong include through a guard at the top of every header
of a layer (CGLOOPFS_LAYER_<NAME>). This keeps the guards themselves honest:
every header of a layer other than common/ carries its own layer's guard,
every .cpp of a layer is compiled into that layer's library, and no source
includes a header of a layer that src/meson.build does not put below it.
Prints one line per problem and exits 1 if there is any.
"""
import os
import re
import sys

SPEC = re.compile(r"\['(\w+)',\s*\[(.*?)\],\s*\[(.*?)\],", re.S)
INCLUDE = re.compile(r'^#include "(\w+)/', re.M)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "src")
    with open(os.path.join(src, "meson.build")) as f:
        meson = f.read()
    layers = {}
    for name, sources, deps in SPEC.findall(meson):
        layers[name] = (re.findall(r"'([^']+)'", sources), re.findall(r"'(\w+)'", deps))
    if not layers:
        print("check-layering: no layer_specs found in src/meson.build")
        return 1

    def below(name, seen=None):
        seen = set() if seen is None else seen
        for d in layers[name][1]:
            if d not in seen:
                seen.add(d)
                below(d, seen)
        return seen

    problems = []
    mains = {"daemon/main.cpp", "cli/main.cpp"}
    for name, (sources, _) in layers.items():
        visible = below(name) | {name, "common"}
        for entry in sorted(os.listdir(os.path.join(src, name))):
            rel = f"{name}/{entry}"
            path = os.path.join(src, rel)
            with open(path) as f:
                text = f.read()
            if entry.endswith(".hpp") and name != "common":
                if f"#ifndef CGLOOPFS_LAYER_{name.upper()}\n#error" not in text:
                    problems.append(f"{rel}: no CGLOOPFS_LAYER_{name.upper()} guard")
            if entry.endswith(".cpp") and rel not in sources and rel not in mains:
                problems.append(f"{rel}: not in the {name} library of src/meson.build")
            for inc in INCLUDE.findall(text):
                if inc in layers and inc not in visible:
                    problems.append(f"{rel}: includes {inc}/, which is not below {name}/")
    for d in sorted(os.listdir(src)):
        if os.path.isdir(os.path.join(src, d)) and d not in layers:
            problems.append(f"src/{d}: a folder that is no layer of src/meson.build")
    for p in problems:
        print(f"check-layering: {p}")
    print(f"check-layering: {len(layers)} layers, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
