/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "units.hpp"

#include <array>
#include <utility>

#include <fmt/core.h>

#include "image_spec.hpp"

namespace cgloopfs::config {

namespace {

void set_why(std::string *ret_why, std::string why)
{
	if (ret_why)
		*ret_why = std::move(why);
}

struct Suffix {
	std::string_view text;
	uint64_t multiplier;
};

constexpr uint64_t KiB = 1024;
constexpr std::array<Suffix, 17> suffixes{{
	{"", 1},
	{"B", 1},
	{"K", KiB},
	{"KiB", KiB},
	{"KB", 1000},
	{"M", KiB *KiB},
	{"MiB", KiB *KiB},
	{"MB", 1000 * 1000},
	{"G", KiB *KiB *KiB},
	{"GiB", KiB *KiB *KiB},
	{"GB", 1000ULL * 1000 * 1000},
	{"T", KiB *KiB *KiB *KiB},
	{"TiB", KiB *KiB *KiB *KiB},
	{"TB", 1000ULL * 1000 * 1000 * 1000},
	{"P", KiB *KiB *KiB *KiB *KiB},
	{"PiB", KiB *KiB *KiB *KiB *KiB},
	{"PB", 1000ULL * 1000 * 1000 * 1000 * 1000},
}};

/* Leading decimal digits of text into *ret; false on overflow or no digits. */
bool parse_digits(std::string_view text, size_t *ret_len, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i = 0;
	bool overflow = false;
	for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; i++) {
		uint64_t d = static_cast<uint64_t>(text[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	*ret_len = i; /* set on overflow too, so callers can tell it from "no digits" */
	*ret = v;
	return i > 0 && !overflow;
}

} /* namespace */

std::optional<uint64_t> parse_size(std::string_view text, std::string *ret_why)
{
	if (text.empty()) {
		set_why(ret_why, "empty value");
		return std::nullopt;
	}
	size_t len = 0;
	uint64_t v = 0;
	if (!parse_digits(text, &len, &v)) {
		set_why(ret_why,
			len ? "too large (more than 2^64 - 1 bytes)"
			    : "not a size (expected bytes, or a number with K, M, G, T, P, "
			      "KiB, MiB, GiB, TiB, PiB, KB, MB, GB, TB or PB)");
		return std::nullopt;
	}
	std::string_view suffix = text.substr(len);
	for (const auto &s : suffixes) {
		if (suffix != s.text)
			continue;
		if (s.multiplier != 1 && v > UINT64_MAX / s.multiplier) {
			set_why(ret_why, "too large (more than 2^64 - 1 bytes)");
			return std::nullopt;
		}
		return v * s.multiplier;
	}
	set_why(ret_why, fmt::format("unknown size suffix \"{}\" (use K, M, G, T, P, KiB, MiB, "
				     "GiB, TiB, PiB, KB, MB, GB, TB or PB)",
				     printable(suffix)));
	return std::nullopt;
}

std::optional<uint64_t> parse_uint(std::string_view text, uint64_t min, uint64_t max,
				   std::string *ret_why)
{
	size_t len = 0;
	uint64_t v = 0;
	if (text.empty() || !parse_digits(text, &len, &v) || len != text.size()) {
		if (!text.empty() && len == 0)
			set_why(ret_why, "not a number");
		else if (!text.empty() && len == text.size())
			set_why(ret_why, "number too large");
		else
			set_why(ret_why, text.empty() ? "empty value" : "not a number");
		return std::nullopt;
	}
	if (v < min || v > max) {
		set_why(ret_why, fmt::format("out of range ({}..{})", min, max));
		return std::nullopt;
	}
	return v;
}

std::optional<uint32_t> parse_mode(std::string_view text, std::string *ret_why)
{
	if (text.empty() || text.size() > 5) {
		set_why(ret_why, "not an octal mode like 0660");
		return std::nullopt;
	}
	uint32_t v = 0;
	for (char c : text) {
		if (c < '0' || c > '7') {
			set_why(ret_why, "not an octal mode like 0660");
			return std::nullopt;
		}
		v = v * 8 + static_cast<uint32_t>(c - '0');
	}
	if (auto why = check_mode(v)) {
		set_why(ret_why, std::move(*why));
		return std::nullopt;
	}
	return v;
}

std::optional<std::string> check_mode(uint64_t mode)
{
	if (mode & ~uint64_t{0666})
		return fmt::format("{:04o} has bits other than read and write (exported images are "
				   "never executable, setuid, setgid or sticky)",
				   mode);
	return std::nullopt;
}

std::string format_size(uint64_t bytes)
{
	static constexpr std::array<std::pair<uint64_t, std::string_view>, 4> units{{
		{KiB * KiB * KiB * KiB, "TiB"},
		{KiB * KiB * KiB, "GiB"},
		{KiB * KiB, "MiB"},
		{KiB, "KiB"},
	}};
	for (const auto &[mult, name] : units) {
		if (bytes >= mult && bytes % mult == 0)
			return fmt::format("{}{}", bytes / mult, name);
	}
	return fmt::format("{}", bytes);
}

} /* namespace cgloopfs::config */
