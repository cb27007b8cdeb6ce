#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Fail when --help and the man pages disagree (STYLE.md 6.6).

    check-man-options.py --cgloopfs BIN --cgloopctl BIN --man-dir DIR --src-dir DIR

Options are written once in the code (src/config/mount_options.cpp,
src/config/image_spec.hpp, src/cli/options.cpp, src/cli/commands.cpp) and once, as prose, in the man pages (man/*.scd). This
compares what the programs print for --help with the OPTIONS-like sections of
the pages, both ways:

  cgloopfs(8)       OPTIONS        vs  cgloopfs --help "Options:"
                    MOUNT OPTIONS  vs  cgloopfs --help "Mount options (-o):",
                                       and the defaults and ranges given there;
                                       every other name the section mentions is
                                       accepted by the daemon, and every option
                                       of mount_option_table is mentioned
  cgloopctl(8)      OPTIONS        vs  cgloopctl --help "Options:"
                    COMMANDS (one "## NAME" subsection per command)
                                   vs  cgloopctl --help "Commands:", and each
                                       subsection's options vs cgloopctl NAME
                                       --help "Options:"
  cgloopfs.toml(5)  KEYS           vs  image_setting_names, the rows of image_settings
                                       (src/config/image_spec.hpp)

In a page, an option is documented by a definition-list term: a line starting
with the option in *bold*, followed by a tab-indented description. Prints one
line per disagreement; exits 1 if there is any.
"""

import argparse
import os
import re
import subprocess
import sys

problems = []


def problem(msg):
    problems.append(msg)


# --------------------------------------------------------------------------
# The man pages (scdoc source)

BOLD = re.compile(r"\*((?:\\.|[^*\\])+)\*")


def unescape(s):
    return re.sub(r"\\(.)", r"\1", s)


def bold_spans(line):
    """The *bold* words of a line, but not references like *mount*(8)."""
    return [unescape(m.group(1)) for m in BOLD.finditer(line)
            if not line.startswith("(", m.end())]


def sections(text, level="#"):
    """{title: [lines]} for the headings of one level ("# X" or "## X")."""
    out = {}
    current = None
    prefix = level + " "
    for line in text.splitlines():
        if line.startswith(prefix):
            current = line[len(prefix):].strip()
            out[current] = []
        elif re.match(r"#+ ", line) and len(line) - len(line.lstrip("#")) < len(level):
            current = None  # a heading of a higher level ends the section
        elif current is not None:
            out[current].append(line)
    return out


def terms(lines):
    """Definition-list terms: unindented lines followed by a tab-indented one,
    as (term line, description text)."""
    out = []
    in_literal = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            in_literal = not in_literal
            continue
        if in_literal or not line.strip() or line[0] in " \t":
            continue
        if i + 1 < len(lines) and lines[i + 1].startswith("\t"):
            desc = []
            for d in lines[i + 1:]:
                if not d.startswith("\t"):
                    break
                desc.append(d.strip())
            out.append((line, " ".join(desc)))
    return out


def prose(lines):
    """The lines of a section that are neither terms nor descriptions nor literal."""
    term_lines = {t for t, _ in terms(lines)}
    out = []
    in_literal = False
    for line in lines:
        if line.startswith("```"):
            in_literal = not in_literal
            continue
        if in_literal or line.startswith("\t") or line in term_lines:
            continue
        out.append(line)
    return out


def dash_options(term_line):
    """-x and --long names in a term line ("*-O*, *--output* _COLS_")."""
    return {s for s in bold_spans(term_line) if re.fullmatch(r"--?[A-Za-z][\w-]*", s)}


def named_options(term_line):
    """The option names of a term line, the first bold word of each comma-separated
    part ("*fsname*=_NAME_", "*nosuid*, *suid*", "*uid*, *gid* (integer)")."""
    names = []
    for part in re.split(r",\s+", term_line):
        spans = bold_spans(part)
        if spans and part.lstrip().startswith("*"):
            names.append(spans[0])
    return names


def read_page(man_dir, page):
    path = os.path.join(man_dir, page + ".scd")
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        problem(f"cannot read {path}: {e}")
        return ""


def need_section(secs, title, page):
    if title not in secs:
        problem(f"{page}: no section \"{title}\"")
        return []
    return secs[title]


# --------------------------------------------------------------------------
# --help

def run_help(argv):
    r = subprocess.run(argv + ["--help"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0 or not r.stdout:
        problem(f"{' '.join(argv)} --help: exit status {r.returncode}, stdout "
                f"{len(r.stdout)} bytes, stderr {r.stderr.strip()!r}")
    return r.stdout


def help_section(text, title):
    """The lines under "Title:" up to the next blank line."""
    out = []
    on = False
    for line in text.splitlines():
        if line.rstrip() == title:
            on = True
            continue
        if on:
            if not line.strip():
                break
            out.append(line)
    return out if on else None


def help_entries(lines):
    """(left column, description) of the entries of a help section; an entry
    is indented by 2 to 6 spaces (a long left column gets its description on
    the next, more indented line)."""
    out = []
    for line in lines:
        indent = len(line) - len(line.lstrip(" "))
        m = re.match(r"\s*(\S.*?)(?:\s{2,}(.*))?$", line)
        if not m:
            continue
        if indent <= 6:  # "  -f, --foreground ...", "      --raw ..."
            out.append([m.group(1), m.group(2) or ""])
        elif out and not out[-1][1]:
            out[-1][1] = line.strip()
    return out


def help_dash_options(lines):
    opts = set()
    for left, _ in help_entries(lines):
        opts |= set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", left))
    return opts


def compare(what, in_help, in_man, man_where):
    for o in sorted(in_help - in_man):
        problem(f"{what}: {o} is in --help but not in {man_where}")
    for o in sorted(in_man - in_help):
        problem(f"{what}: {o} is in {man_where} but not in --help")


# --------------------------------------------------------------------------
# The code's own lists (for what --help does not show)

def cpp_string_list(path, variable):
    """The string literals of `variable = { ... };` in a C++ source file."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        problem(f"cannot read {path}: {e}")
        return []
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    m = re.search(re.escape(variable) + r"(?:\[\])?\s*=\s*\{(.*?)\n\};", text, re.S)
    if not m:
        problem(f"{path}: cannot find `{variable} = {{ ... }};`")
        return []
    return m.group(1)


# The first string of each row: `{"name", ...}` or `{.name = "name", ...}`.
ROW_NAME = re.compile(r'^\s*\{\s*(?:\.name\s*=\s*)?"([^"]+)"', re.M)


def manifest_keys(src_dir):
    """image_setting_names: the names of the rows of image_settings."""
    path = os.path.join(src_dir, "src", "config", "image_spec.hpp")
    body = cpp_string_list(path, "image_settings")
    keys = ROW_NAME.findall(body) if body else []
    if body and "path" not in keys:
        problem(f"{path}: image_settings (image_setting_names) looks wrong: {keys}")
    return keys


def mount_option_names(src_dir):
    path = os.path.join(src_dir, "src", "config", "mount_options.cpp")
    body = cpp_string_list(path, "mount_option_rows")
    names = ROW_NAME.findall(body) if body else []
    if body and "idle_timeout" not in names:
        problem(f"{path}: mount_option_rows (mount_option_table) looks wrong: {names}")
    return names


# --------------------------------------------------------------------------
# The checks

def check_cgloopfs(binary, man_dir, src_dir):
    page = "cgloopfs.8"
    secs = sections(read_page(man_dir, page))
    text = run_help([binary])

    lines = help_section(text, "Options:")
    if lines is None:
        problem("cgloopfs --help: no \"Options:\" section")
        lines = []
    man_opts = set()
    for t, _ in terms(need_section(secs, "OPTIONS", page)):
        man_opts |= dash_options(t)
    compare("cgloopfs", help_dash_options(lines), man_opts, f"{page} OPTIONS")

    lines = help_section(text, "Mount options (-o):")
    if lines is None:
        problem("cgloopfs --help: no \"Mount options (-o):\" section")
        lines = []
    help_opts = {}
    for left, desc in help_entries(lines):
        help_opts[re.match(r"[\w]+", left).group(0)] = desc
    section = need_section(secs, "MOUNT OPTIONS", page)
    man_opts = {}
    for t, desc in terms(section):
        for name in named_options(t):
            man_opts[name] = desc
    compare("cgloopfs -o", set(help_opts), set(man_opts), f"{page} MOUNT OPTIONS")

    # "(60; 1..86400)" in --help: the page gives the same default and range.
    for name, desc in help_opts.items():
        m = re.search(r"\((\d+); (\d+)\.\.(\d+)\)", desc)
        if m and name in man_opts:
            default, lo, hi = m.groups()
            if not re.search(rf"\bDefault {default}\b", man_opts[name]):
                problem(f"cgloopfs -o {name}: --help says default {default}; "
                        f"{page} does not say \"Default {default}\"")
            if f"{lo}..{hi}" not in man_opts[name]:
                problem(f"cgloopfs -o {name}: --help says range {lo}..{hi}; {page} does not")

    # Options --help leaves out (mount(8)'s generic flags): the page names them
    # in prose; each name it gives is accepted, and none is forgotten.
    mentioned = set()
    for line in prose(section):
        mentioned |= {s for s in bold_spans(line) if re.fullmatch(r"[a-z_]+", s)}
    table = mount_option_names(src_dir)
    for name in table:
        if name not in help_opts and name not in man_opts and name not in mentioned:
            problem(f"cgloopfs -o {name}: accepted (mount_option_table) but not in "
                    f"{page} MOUNT OPTIONS")
    for name in sorted(mentioned - set(man_opts)):
        r = subprocess.run([binary, "-f", "-o", name, "/nonexistent/source",
                            "/nonexistent/mnt"], capture_output=True, text=True, timeout=30)
        if r.returncode == 2:
            problem(f"cgloopfs -o {name}: {page} says it is accepted, but: "
                    f"{r.stderr.strip()!r}")
        elif r.returncode != 1:
            problem(f"cgloopfs -o {name} /nonexistent/source: exit status "
                    f"{r.returncode}, want 1 (a missing source)")
    return len(help_opts) + len(mentioned)


def check_cgloopctl(binary, man_dir):
    page = "cgloopctl.8"
    secs = sections(read_page(man_dir, page))
    text = run_help([binary])

    lines = help_section(text, "Options:")
    if lines is None:
        problem("cgloopctl --help: no \"Options:\" section")
        lines = []
    global_help = help_dash_options(lines)
    man_opts = set()
    for t, _ in terms(need_section(secs, "OPTIONS", page)):
        man_opts |= dash_options(t)
    compare("cgloopctl", global_help, man_opts, f"{page} OPTIONS")

    lines = help_section(text, "Commands:")
    if lines is None:
        problem("cgloopctl --help: no \"Commands:\" section")
        lines = []
    help_commands = [left.split()[0] for left, _ in help_entries(lines)]
    if not help_commands:
        problem("cgloopctl --help: no commands")
    commands_text = "\n".join(need_section(secs, "COMMANDS", page))
    man_commands = sections(commands_text, "##")
    compare("cgloopctl commands", set(help_commands), set(man_commands),
            f"{page} COMMANDS")

    count = len(global_help)
    for cmd in help_commands:
        ctext = run_help([binary, cmd])
        clines = help_section(ctext, "Options:") or []
        cmd_help = help_dash_options(clines)
        glines = help_section(ctext, "Global options:")
        if glines is None or help_dash_options(glines) != global_help:
            problem(f"cgloopctl {cmd} --help: its \"Global options:\" are not those of "
                    f"cgloopctl --help")
        if cmd in man_commands:
            man_cmd = set()
            for t, _ in terms(man_commands[cmd]):
                man_cmd |= dash_options(t)
            compare(f"cgloopctl {cmd}", cmd_help, man_cmd, f"{page} COMMANDS/{cmd}")
        count += len(cmd_help)
    return count + len(help_commands)


def check_manifest_keys(man_dir, src_dir):
    page = "cgloopfs.toml.5"
    secs = sections(read_page(man_dir, page))
    man_keys = set()
    for t, _ in terms(need_section(secs, "KEYS", page)):
        man_keys |= set(named_options(t))
    keys = manifest_keys(src_dir)
    if not keys:
        problem("no manifest keys found in the code")
    for k in sorted(set(keys) - man_keys):
        problem(f"manifest key {k}: in image_setting_names but not in {page} KEYS")
    for k in sorted(man_keys - set(keys)):
        problem(f"manifest key {k}: in {page} KEYS but not in image_setting_names")
    return len(keys)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cgloopfs", required=True)
    ap.add_argument("--cgloopctl", required=True)
    ap.add_argument("--man-dir", required=True, help="the directory of the .scd pages")
    ap.add_argument("--src-dir", required=True, help="the top of the source tree")
    a = ap.parse_args()
    n = check_cgloopfs(a.cgloopfs, a.man_dir, a.src_dir)
    n += check_cgloopctl(a.cgloopctl, a.man_dir)
    n += check_manifest_keys(a.man_dir, a.src_dir)
    for p in problems:
        print(f"FAIL: {p}")
    print(f"{n} options, commands and keys compared: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
