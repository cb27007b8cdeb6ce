/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Text from outside (cgroup paths, unit names, image names, file paths),
 * made safe to print, and carried exactly through JSON. Pure, reentrant.
 *
 * For a terminal (tables, --raw, log lines), escape_for_terminal(): every
 * byte that could move the cursor, recolour, rewrite or split a line, or
 * pass for something else is written as an escape, and a backslash is
 * doubled, so the escapes cannot be faked by a name that spells one:
 *
 *   \\          a backslash
 *   \a \b \t \n \v \f \r   those control characters
 *   \xNN        any other byte: the other C0 controls (ESC is \x1b), DEL,
 *               each byte of invalid UTF-8, and each byte of a C1 control
 *               (U+0080..U+009F) or of a character that reorders or hides
 *               text (bidi controls U+200E/F, U+202A..U+202E, U+2066..U+2069,
 *               the line and paragraph separators U+2028/9, U+FEFF)
 *
 * Printable ASCII and the other valid UTF-8 characters stay as they are.
 * The escaped text is printable and unambiguous: unescape_terminal() gives
 * back the bytes.
 *
 * For JSON, json_quote() writes a string literal that decodes to exactly
 * the bytes given: valid UTF-8 as is (C0 and C1 controls and DEL as \uXXXX),
 * and each byte NN of invalid UTF-8 as the lone surrogate \udcNN, as
 * Python's "surrogateescape" error handler (PEP 383) reads and writes
 * file names: json.loads(text)["cgroup"].encode("utf-8", "surrogateescape")
 * gives the bytes. json_unquote() reads such literals (and any JSON string).
 */
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace cgloopfs {

/* The length of the valid UTF-8 character at s[i], or 0 when s[i] starts none. */
size_t utf8_char_length(std::string_view s, size_t i);

/* `text` for a terminal, as above. */
std::string escape_for_terminal(std::string_view text);

/*
 * The same, but a backslash stays as it is: for a message of ours that
 * quotes text from outside already made printable. Every log line goes
 * through it (common/log.cpp), so no line can be split or recoloured.
 */
std::string escape_controls(std::string_view text);

/* The bytes an escape_for_terminal() text stands for (the inverse; for tests). */
std::string unescape_terminal(std::string_view escaped);

/* `bytes` as a JSON string literal, quotes included, as above. */
std::string json_quote(std::string_view bytes);

/*
 * Read the JSON string literal that starts at text[pos] (a '"'): append its
 * bytes to `out` and return the position after its closing quote, or npos
 * when it is malformed (no closing quote, a raw control character, a bad
 * escape, a lone surrogate other than \udc80..\udcff).
 */
size_t json_unquote(std::string_view text, size_t pos, std::string &out);

} /* namespace cgloopfs */
