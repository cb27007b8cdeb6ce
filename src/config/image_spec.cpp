/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "image_spec.hpp"

#include <unordered_map>

#include <fmt/core.h>

namespace cgloopfs::config {

const std::vector<std::string_view> image_setting_names = {
	"name",	      "path",	   "offset", "size_limit", "read_only", "direct_io",
	"block_size", "discard", "mode",   "uid",	   "gid",
	"lock",
};

std::optional<LockMode> parse_lock_mode(std::string_view text)
{
	if (text == "auto")
		return LockMode::automatic;
	if (text == "on" || text == "true")
		return LockMode::on;
	if (text == "off" || text == "false")
		return LockMode::off;
	return std::nullopt;
}

const char *lock_mode_name(LockMode mode)
{
	switch (mode) {
	case LockMode::automatic:
		return "auto";
	case LockMode::on:
		return "on";
	case LockMode::off:
		return "off";
	}
	return "auto";
}

void ImageSettings::inherit(const ImageSettings &d)
{
	auto take = [](auto &mine, const auto &theirs) {
		if (!mine && theirs)
			mine = theirs;
	};
	take(name, d.name);
	take(path, d.path);
	take(offset, d.offset);
	take(size_limit, d.size_limit);
	take(read_only, d.read_only);
	take(direct_io, d.direct_io);
	take(lock, d.lock);
	take(block_size, d.block_size);
	take(discard, d.discard);
	take(mode, d.mode);
	take(uid, d.uid);
	take(gid, d.gid);
}

std::optional<std::string> check_name(std::string_view name)
{
	if (name.empty())
		return "the name is empty";
	if (name == "." || name == "..")
		return fmt::format("\"{}\" is not a file name", name);
	if (name.size() > 255)
		return "the name is longer than 255 bytes";
	for (char c : name) {
		if (c == '/')
			return "the name contains '/' (it must be a single path component)";
		if (c == '\0')
			return "the name contains a NUL byte";
		if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
			return "the name contains a control character";
	}
	return std::nullopt;
}

bool valid_block_size(uint64_t v)
{
	return v >= 512 && v <= 4096 && (v & (v - 1)) == 0;
}

std::string printable(std::string_view text)
{
	std::string out;
	for (char c : text) {
		auto u = static_cast<unsigned char>(c);
		if (u < 0x20 || u == 0x7f || c == '\\' || c == '"')
			out += fmt::format("\\x{:02x}", u);
		else
			out += c;
	}
	return out;
}

std::string describe(const std::string &origin, const std::string &name)
{
	std::string s;
	if (!origin.empty())
		s = origin + ": ";
	if (!name.empty())
		s += fmt::format("image \"{}\": ", printable(name));
	return s;
}

ImageSpec make_spec(const ImageSettings &s, const std::string &origin)
{
	ImageSpec spec;
	spec.origin = origin;
	if (!s.path || s.path->empty())
		throw ConfigError(describe(origin, s.name.value_or("")) +
				  "path: missing (every image needs a backing file)");
	spec.path = *s.path;
	if (s.name) {
		spec.name = *s.name;
	} else {
		auto slash = spec.path.find_last_of('/');
		spec.name = slash == std::string::npos ? spec.path : spec.path.substr(slash + 1);
	}
	if (auto why = check_name(spec.name))
		throw ConfigError(fmt::format("{}name: {}", describe(origin, spec.name), *why));
	if (spec.path.find('\0') != std::string::npos)
		throw ConfigError(describe(origin, spec.name) + "path: contains a NUL byte");
	spec.offset = s.offset.value_or(0);
	spec.size_limit = s.size_limit.value_or(0);
	if (spec.offset > static_cast<uint64_t>(INT64_MAX))
		throw ConfigError(fmt::format("{}offset: {} is larger than 2^63 - 1",
					      describe(origin, spec.name), spec.offset));
	if (spec.size_limit > static_cast<uint64_t>(INT64_MAX))
		throw ConfigError(fmt::format("{}size_limit: {} is larger than 2^63 - 1",
					      describe(origin, spec.name), spec.size_limit));
	spec.read_only = s.read_only.value_or(false);
	spec.direct_io = s.direct_io.value_or(false);
	spec.lock = s.lock;
	spec.block_size = s.block_size.value_or(512);
	if (!valid_block_size(spec.block_size))
		throw ConfigError(fmt::format("{}block_size: {} is not a power of two in 512..4096",
					      describe(origin, spec.name), spec.block_size));
	spec.discard = s.discard.value_or(false);
	if (s.mode && (*s.mode & ~0666u))
		throw ConfigError(fmt::format("{}mode: {:04o} has bits other than read and write",
					      describe(origin, spec.name), *s.mode));
	spec.mode = s.mode;
	spec.uid = s.uid;
	spec.gid = s.gid;
	return spec;
}

void check_unique_names(const std::vector<ImageSpec> &specs)
{
	std::unordered_map<std::string, const ImageSpec *> seen;
	for (const auto &spec : specs) {
		auto [it, inserted] = seen.emplace(spec.name, &spec);
		if (inserted)
			continue;
		std::string first = it->second->origin.empty() ? "" : " (first at " + it->second->origin + ")";
		throw ConfigError(fmt::format("{}name: \"{}\" is used twice{}",
					      describe(spec.origin, spec.name), printable(spec.name),
					      first));
	}
}

} /* namespace cgloopfs::config */
