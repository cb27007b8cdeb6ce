/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "image_spec.hpp"

#include <type_traits>
#include <unordered_map>

#include <fmt/core.h>

#include "units.hpp"

namespace cgloopfs::config {

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

namespace {

/* The range check of a number read for a setting of `kind`. */
std::optional<std::string> check_number(SettingKind kind, uint64_t v)
{
	switch (kind) {
	case SettingKind::window:
		if (v > static_cast<uint64_t>(INT64_MAX))
			return fmt::format("{} is larger than 2^63 - 1", v);
		break;
	case SettingKind::block_size:
		if (!valid_block_size(v))
			return fmt::format("{} is not a power of two in 512..4096", v);
		break;
	case SettingKind::mode:
		return check_mode(v);
	case SettingKind::id:
		if (v > UINT32_MAX - 1)
			return fmt::format("{} is out of range (0..4294967294)", v);
		break;
	default:
		break;
	}
	return std::nullopt;
}

std::optional<std::string> check_text(SettingKind kind, const std::string &v)
{
	if (kind != SettingKind::path)
		return std::nullopt; /* a name is checked by make_spec, with the default name */
	if (v.empty())
		return "empty path";
	if (v.find('\0') != std::string::npos)
		return "contains a NUL byte";
	return std::nullopt;
}

/* What `s` holds for `row`, checked; nullopt when fine or unset. */
std::optional<std::string> check_setting(const ImageSettings &s, const ImageSetting &row)
{
	return std::visit(
		[&](auto field) -> std::optional<std::string> {
			const auto &v = s.*field;
			using T = typename std::decay_t<decltype(v)>::value_type;
			if (!v)
				return std::nullopt;
			if constexpr (std::is_same_v<T, std::string>)
				return check_text(row.kind, *v);
			else if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, LockMode>)
				return std::nullopt;
			else
				return check_number(row.kind, *v);
		},
		row.field);
}

/* A number of bytes: an integer, or a string with a suffix ("512MiB"). */
std::optional<std::string> read_bytes(const SettingValue &value, uint64_t *ret)
{
	std::string why;
	switch (value.type) {
	case SettingValue::Type::integer:
		if (value.integer < 0)
			return fmt::format("{} is negative", value.integer);
		*ret = static_cast<uint64_t>(value.integer);
		return std::nullopt;
	case SettingValue::Type::string:
		if (auto v = parse_size(value.text, &why)) {
			*ret = *v;
			return std::nullopt;
		}
		return fmt::format("\"{}\": {}", printable(value.text), why);
	default:
		return "must be an integer or a string like \"512MiB\"";
	}
}

/* A mode: octal digits in a string, or an integer (TOML's 0o660). */
std::optional<std::string> read_mode(const SettingValue &value, uint64_t *ret)
{
	std::string why;
	switch (value.type) {
	case SettingValue::Type::string:
		if (auto v = parse_mode(value.text, &why)) {
			*ret = *v;
			return std::nullopt;
		}
		return fmt::format("\"{}\": {}", printable(value.text), why);
	case SettingValue::Type::integer:
		/* Decimal 660 is octal 1224: say so rather than misread it. */
		if (value.integer < 0 || check_mode(static_cast<uint64_t>(value.integer)))
			return fmt::format(
				"{:o} (octal) has bits other than read and write; write the "
				"mode as a string like \"0660\"",
				value.integer);
		*ret = static_cast<uint64_t>(value.integer);
		return std::nullopt;
	default:
		return "must be an octal string like \"0660\"";
	}
}

/* A uid or gid: a decimal number, an integer or a string. */
std::optional<std::string> read_id(const SettingValue &value, uint64_t *ret)
{
	std::string why;
	switch (value.type) {
	case SettingValue::Type::integer:
		if (value.integer < 0)
			return fmt::format("{} is out of range (0..4294967294)", value.integer);
		*ret = static_cast<uint64_t>(value.integer);
		return std::nullopt;
	case SettingValue::Type::string:
		if (auto v = parse_uint(value.text, 0, UINT64_MAX, &why)) {
			*ret = *v;
			return std::nullopt;
		}
		return fmt::format("\"{}\": {}", printable(value.text), why);
	default:
		return "must be a number";
	}
}

} /* namespace */

const ImageSetting *find_image_setting(std::string_view name)
{
	for (const auto &row : image_settings)
		if (row.name == name)
			return &row;
	return nullptr;
}

std::optional<std::string> set_image_setting(ImageSettings &s, const ImageSetting &row,
					     const SettingValue &value)
{
	if (row.kind == SettingKind::name || row.kind == SettingKind::path) {
		if (value.type != SettingValue::Type::string)
			return "must be a string";
		if (auto why = check_text(row.kind, value.text))
			return why;
		s.*std::get<std::optional<std::string> ImageSettings::*>(row.field) = value.text;
		return std::nullopt;
	}
	if (row.kind == SettingKind::lock) {
		std::optional<LockMode> mode;
		if (value.type == SettingValue::Type::boolean)
			mode = value.boolean ? LockMode::on : LockMode::off;
		else if (value.type == SettingValue::Type::string)
			mode = parse_lock_mode(value.text);
		if (!mode)
			return value.type == SettingValue::Type::string
				       ? fmt::format("\"{}\": must be \"auto\", \"on\" or \"off\"",
						     printable(value.text))
				       : "must be \"auto\", \"on\" or \"off\"";
		s.*std::get<std::optional<LockMode> ImageSettings::*>(row.field) = *mode;
		return std::nullopt;
	}
	if (row.kind == SettingKind::flag) {
		if (value.type != SettingValue::Type::boolean)
			return "must be true or false";
		s.*std::get<std::optional<bool> ImageSettings::*>(row.field) = value.boolean;
		return std::nullopt;
	}
	uint64_t n = 0;
	auto why = row.kind == SettingKind::mode ? read_mode(value, &n)
		   : row.kind == SettingKind::id ? read_id(value, &n)
						 : read_bytes(value, &n);
	if (!why)
		why = check_number(row.kind, n);
	if (why)
		return why;
	if (auto *f = std::get_if<std::optional<uint64_t> ImageSettings::*>(&row.field))
		s.**f = n;
	else
		s.*std::get<std::optional<uint32_t> ImageSettings::*>(row.field) =
			static_cast<uint32_t>(n); /* checked above: fits */
	return std::nullopt;
}

ImageSettings read_image_settings(const std::vector<WrittenSetting> &written, bool is_defaults)
{
	ImageSettings s;
	/* The image's name, given or implied by its path (make_spec()), once known. */
	auto label = [&]() -> std::string {
		if (s.name)
			return *s.name;
		if (!s.path)
			return "";
		auto slash = s.path->find_last_of('/');
		return slash == std::string::npos ? *s.path : s.path->substr(slash + 1);
	};
	auto apply = [&](const WrittenSetting &w) {
		auto refused = [&](const std::string &why) {
			return ConfigError(fmt::format("{}{}: {}", describe(w.origin, label()),
						       printable(w.key), why));
		};
		const ImageSetting *row = find_image_setting(w.key);
		if (!row)
			throw refused("unknown setting");
		if (row->image_only && is_defaults)
			throw refused(fmt::format("only an [[image]] can have a {}", row->name));
		if (auto why = set_image_setting(s, *row, w.value))
			throw refused(*why);
	};
	/*
	 * The name first, then the path (which implies a name where none is
	 * given), so that every later message can name the image.
	 */
	if (!is_defaults)
		for (const char *first : {"name", "path"})
			for (const auto &w : written)
				if (w.key == first)
					apply(w);
	for (const auto &w : written)
		if (is_defaults || (w.key != "name" && w.key != "path"))
			apply(w);
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
	for (const auto &row : image_settings)
		if (auto why = check_setting(s, row))
			throw ConfigError(fmt::format("{}{}: {}", describe(origin, spec.name),
						      row.name, *why));
	spec.offset = s.offset.value_or(0);
	spec.size_limit = s.size_limit.value_or(0);
	spec.read_only = s.read_only.value_or(false);
	spec.direct_io = s.direct_io.value_or(false);
	spec.lock = s.lock;
	spec.block_size = s.block_size.value_or(512);
	spec.discard = s.discard.value_or(false);
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
		std::string first =
			it->second->origin.empty() ? "" : " (first at " + it->second->origin + ")";
		throw ConfigError(fmt::format("{}name: \"{}\" is used twice{}",
					      describe(spec.origin, spec.name),
					      printable(spec.name), first));
	}
}

} /* namespace cgloopfs::config */
