/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "manifest.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/core.h>
#include <toml++/toml.h>

#include "common/escape.hpp"

namespace cgloopfs::config {

namespace {

std::string where(const std::string &filename, const toml::node &node)
{
	return fmt::format("{}:{}", filename, node.source().begin.line);
}

/* A TOML value as image_settings reads it. */
SettingValue value_of(const toml::node &node)
{
	if (auto v = node.as_string())
		return SettingValue::of(v->get());
	if (auto v = node.as_integer())
		return SettingValue::of(v->get());
	if (auto v = node.as_boolean())
		return SettingValue::of(v->get());
	return {};
}

/*
 * One table ([defaults] or an [[image]]) as ImageSettings; a relative path
 * is taken from `base_dir`.
 */
ImageSettings read_table(const toml::table &table, bool is_defaults, const std::string &filename,
			 const std::string &base_dir)
{
	std::vector<WrittenSetting> written;
	for (auto &&[key, node] : table)
		written.push_back({std::string(key.str()), value_of(node), where(filename, node)});
	ImageSettings s = read_image_settings(written, is_defaults);
	if (s.path && s.path->front() != '/' && !base_dir.empty())
		s.path = base_dir + (base_dir.back() == '/' ? "" : "/") + *s.path;
	return s;
}

/*
 * toml++ 3.3.0 (Debian 12's) has undefined behaviour when it asks whether
 * some non-ASCII characters are whitespace (marzer/tomlplusplus#190, #295;
 * found by tests/fuzz/fuzz_manifest). In valid TOML it asks that of a
 * non-ASCII character only at the first one after a line-ending backslash
 * in a multi-line basic string; in invalid TOML anywhere (outside strings,
 * after any backslash, in a bare value that scans over quotes).
 *
 * Where non-ASCII characters may be in a TOML text that is valid once they
 * are made ASCII: the one that is not inside a string or comment, or is
 * first after a line-ending backslash or after a backslash. Exact for such
 * texts (their quotes, backslashes, '#' and line breaks are where TOML's
 * grammar says); only a hint for others. Returns the 1-based line and why,
 * or line 0.
 */
struct Misplaced {
	size_t line = 0;
	const char *why = "";
};

Misplaced find_misplaced_non_ascii(std::string_view text)
{
	enum { outside, comment, basic, literal, ml_basic, ml_literal } state = outside;
	auto non_ascii = [&](size_t i) {
		return i < text.size() && static_cast<unsigned char>(text[i]) >= 0x80;
	};
	auto blank = [&](size_t i) {
		return i < text.size() &&
		       (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n');
	};
	auto run_of = [&](size_t i, char c) {
		size_t n = 0;
		while (i + n < text.size() && text[i + n] == c)
			n++;
		return n;
	};
	size_t line = 1;
	size_t i = text.substr(0, 3) == "\xef\xbb\xbf" ? 3 : 0; /* a UTF-8 byte order mark */
	while (i < text.size()) {
		char c = text[i];
		if (c == '\n')
			line++;
		switch (state) {
		case outside:
			if (non_ascii(i))
				return {line, "a non-ASCII character outside a string or comment"};
			if (c == '#') {
				state = comment;
			} else if (c == '"' || c == '\'') {
				bool multi = run_of(i, c) >= 3;
				state = c == '"' ? (multi ? ml_basic : basic)
						 : (multi ? ml_literal : literal);
				i += multi ? 3 : 1;
				continue;
			}
			break;
		case comment:
			if (c == '\n')
				state = outside;
			break;
		case basic:
		case literal:
			if (c == '\n' || c == (state == basic ? '"' : '\''))
				state = outside;
			else if (c == '\\' && state == basic && i + 1 < text.size() &&
				 text[i + 1] != '\n')
				i++; /* an escaped character */
			break;
		case ml_basic:
		case ml_literal:
			if (c == (state == ml_basic ? '"' : '\'') && run_of(i, c) >= 3) {
				/* One or two quotes may end the content just inside the closing three. */
				i += std::min<size_t>(run_of(i, c), 5);
				state = outside;
				continue;
			}
			if (c != '\\' || state != ml_basic)
				break;
			if (non_ascii(i + 1))
				return {line, "a non-ASCII character after a backslash"};
			if (blank(i + 1)) {
				/* A line-ending backslash: the whitespace after it is skipped. */
				for (i++; blank(i); i++)
					line += text[i] == '\n';
				if (non_ascii(i))
					return {line,
						"a non-ASCII character first after a line-ending "
						"backslash (not supported)"};
				continue;
			}
			i++; /* an escaped character */
			break;
		}
		i++;
	}
	return {};
}

[[noreturn]] void malformed(const std::string &filename, const toml::parse_error &e)
{
	/* toml++ quotes what it read, line breaks too: keep the message one line. */
	std::string why;
	for (char c : e.description()) {
		auto u = static_cast<unsigned char>(c);
		why += u < 0x20 || u == 0x7f ? fmt::format("\\x{:02x}", u) : std::string(1, c);
	}
	const auto &b = e.source().begin;
	throw ConfigError(
		fmt::format("{}:{}:{}: malformed manifest: {}", filename, b.line, b.column, why));
}

/*
 * toml::parse, kept clear of toml++'s undefined behaviour on non-ASCII text
 * (see find_misplaced_non_ascii): a text with non-ASCII characters is first
 * parsed with each of their bytes made 'x', where toml++ meets none; only a
 * text valid that way, with its non-ASCII characters where TOML allows them,
 * reaches toml++ as it is.
 */
toml::table parse_toml(std::string_view text, const std::string &filename)
{
	auto non_ascii = [](char c) { return static_cast<unsigned char>(c) >= 0x80; };
	if (std::any_of(text.begin(), text.end(), non_ascii)) {
		std::string ascii(text);
		size_t bom = ascii.compare(0, 3, "\xef\xbb\xbf") == 0 ? 3 : 0; /* toml++ skips it */
		std::replace_if(ascii.begin() + static_cast<long>(bom), ascii.end(), non_ascii,
				'x');
		auto misplaced = find_misplaced_non_ascii(text);
		try {
			(void)toml::parse(ascii, filename);
		} catch (const toml::parse_error &e) {
			/* A non-ASCII character there is likely what toml++ saw as 'x'. */
			if (!misplaced.line || misplaced.line > e.source().begin.line)
				malformed(filename, e);
		}
		if (misplaced.line)
			throw ConfigError(fmt::format("{}:{}: malformed manifest: {}", filename,
						      misplaced.line, misplaced.why));
	}
	try {
		return toml::parse(text, filename);
	} catch (const toml::parse_error &e) {
		malformed(filename, e);
	}
}

bool valid_utf8(std::string_view s)
{
	for (size_t i = 0; i < s.size();) {
		size_t len = utf8_char_length(s, i);
		if (len == 0)
			return false;
		i += len;
	}
	return true;
}

} /* namespace */

std::vector<ImageSpec> parse_manifest(std::string_view text, const std::string &filename,
				      const std::string &base_dir)
{
	if (auto nul = text.find('\0'); nul != std::string_view::npos) {
		size_t line =
			1 + static_cast<size_t>(std::count(text.begin(), text.begin() + nul, '\n'));
		throw ConfigError(fmt::format("{}:{}: malformed manifest: contains a NUL byte",
					      filename, line));
	}
	toml::table root = parse_toml(text, filename);

	ImageSettings defaults;
	const toml::array *images = nullptr;
	for (auto &&[key, node] : root) {
		std::string k(key.str());
		std::string at = where(filename, node);
		if (k == "defaults") {
			auto *t = node.as_table();
			if (!t)
				throw ConfigError(at + ": defaults: must be a table ([defaults])");
			defaults = read_table(*t, true, filename, base_dir);
		} else if (k == "image") {
			images = node.as_array();
			if (!images || (!images->empty() && !images->is_array_of_tables()))
				throw ConfigError(
					at + ": image: must be an array of tables ([[image]])");
		} else {
			throw ConfigError(fmt::format("{}: {}: unknown key (a manifest has "
						      "[defaults] and [[image]] tables)",
						      at, printable(k)));
		}
	}

	std::vector<ImageSpec> specs;
	if (images) {
		for (const auto &node : *images) {
			const auto &table = *node.as_table();
			ImageSettings s = read_table(table, false, filename, base_dir);
			s.inherit(defaults);
			specs.push_back(make_spec(s, where(filename, node)));
		}
	}
	check_unique_names(specs);
	return specs;
}

std::vector<ImageSpec> load_manifest(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	if (!in)
		throw ConfigError(fmt::format("manifest \"{}\": {}", path, std::strerror(errno)));
	/* Read at most one byte past the limit: a huge or endless file is refused, not loaded. */
	std::string text(max_manifest_bytes + 1, '\0');
	in.read(text.data(), static_cast<std::streamsize>(text.size()));
	if (in.bad())
		throw ConfigError(fmt::format("manifest \"{}\": read error", path));
	text.resize(static_cast<size_t>(in.gcount()));
	if (text.size() > max_manifest_bytes)
		throw ConfigError(fmt::format("manifest \"{}\": larger than {} MiB: not a manifest",
					      path, max_manifest_bytes >> 20));
	std::string dir;
	auto slash = path.find_last_of('/');
	if (slash != std::string::npos)
		dir = slash == 0 ? "/" : path.substr(0, slash);
	return parse_manifest(text, path, dir);
}

std::string format_manifest(const std::vector<ImageSpec> &specs)
{
	toml::table root;
	toml::array images;
	for (const auto &spec : specs) {
		/* TOML text is UTF-8: another byte would be written as a character, naming another file. */
		for (const auto *field : {&spec.name, &spec.path})
			if (!valid_utf8(*field))
				throw ConfigError(fmt::format(
					"image {}: its {} is not valid UTF-8, which a manifest "
					"cannot hold",
					json_quote(spec.name),
					field == &spec.name ? "name" : "path"));
		toml::table t;
		t.insert("name", spec.name);
		t.insert("path", spec.path);
		t.insert("offset", static_cast<int64_t>(spec.offset));
		t.insert("size_limit", static_cast<int64_t>(spec.size_limit));
		t.insert("read_only", spec.read_only);
		t.insert("direct_io", spec.direct_io);
		if (spec.lock)
			t.insert("lock", lock_mode_name(*spec.lock));
		t.insert("block_size", static_cast<int64_t>(spec.block_size));
		t.insert("discard", spec.discard);
		if (spec.mode)
			t.insert("mode", fmt::format("{:04o}", *spec.mode));
		if (spec.uid)
			t.insert("uid", static_cast<int64_t>(*spec.uid));
		if (spec.gid)
			t.insert("gid", static_cast<int64_t>(*spec.gid));
		images.push_back(std::move(t));
	}
	if (!images.empty())
		root.insert("image", std::move(images));
	/*
	 * Basic strings only: toml++ 3.3.0 picks a multi-line literal string for
	 * text with a line break even when it holds three single quotes, and
	 * that reads back as something else or not at all (found by
	 * tests/fuzz/fuzz_manifest).
	 */
	constexpr auto flags =
		toml::format_flags::allow_unicode_strings | toml::format_flags::indentation;
	std::ostringstream ss;
	ss << toml::toml_formatter(root, flags) << "\n";
	return ss.str();
}

} /* namespace cgloopfs::config */
