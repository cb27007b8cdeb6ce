/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The loop settings of one image, as a user wrote them (manifest, directory
 * or command line), before any file is opened. Plain values; reentrant.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CONFIG
#error "config/ is not a layer below this one (see src/meson.build)"
#endif

#include <array>
#include <cstdint>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace cgloopfs::config {

/*
 * A refused configuration. what() is one line naming where (file and line
 * when known), the image and the setting: 'm.toml:7: image "a": offset: ...'.
 */
class ConfigError : public std::runtime_error
{
public:
	using std::runtime_error::runtime_error;
};

/*
 * Image locks (QEMU's locking=): auto takes them where the file system has
 * open file description locks and serves unlocked where it has none; on
 * refuses to serve without them; off takes none and checks nothing.
 */
enum class LockMode { automatic, on, off };

/* "auto", "on", "off" (and the booleans as on/off); nullopt for anything else. */
std::optional<LockMode> parse_lock_mode(std::string_view text);
const char *lock_mode_name(LockMode mode);

/* Every per-image setting, each optional: what [defaults] or an [[image]] says. */
struct ImageSettings {
	std::optional<std::string> name;
	std::optional<std::string> path;
	std::optional<uint64_t> offset;
	std::optional<uint64_t> size_limit;
	std::optional<bool> read_only;
	std::optional<bool> direct_io;
	std::optional<LockMode> lock;
	std::optional<uint32_t> block_size;
	std::optional<bool> discard;
	std::optional<uint32_t> mode;
	std::optional<uint32_t> uid;
	std::optional<uint32_t> gid;

	/* Fill every setting this one lacks from `defaults`. */
	void inherit(const ImageSettings &defaults);
};

/* Complete settings of one image (name and path set, the rest defaulted). */
struct ImageSpec {
	std::string name;
	std::string path;
	uint64_t offset = 0;
	uint64_t size_limit = 0; /* 0: up to the end of the backing file */
	bool read_only = false;
	bool direct_io = false;
	std::optional<LockMode> lock; /* unset: the mount's -o lock */
	uint32_t block_size = 512;
	bool discard = false;
	std::optional<uint32_t> mode; /* unset: the backing file's rw bits */
	std::optional<uint32_t> uid;  /* unset: the backing file's owner */
	std::optional<uint32_t> gid;
	std::string origin; /* "m.toml:7" or "" : where it was written, for messages */
};

/*
 * A setting's value as a user wrote it: a TOML string, integer or boolean, a
 * control request's JSON value, or a word of the command line. `other` is
 * any other type (a float, an array, a table), refused with the expected one.
 */
struct SettingValue {
	enum class Type { other, string, integer, boolean } type = Type::other;
	std::string text;
	int64_t integer = 0;
	bool boolean = false;

	static SettingValue of(std::string v) { return {Type::string, std::move(v), 0, false}; }
	static SettingValue of(int64_t v) { return {Type::integer, {}, v, false}; }
	static SettingValue of(bool v) { return {Type::boolean, {}, 0, v}; }
};

/* How a setting's value is read and checked. */
enum class SettingKind {
	name,	    /* a string; a safe file name (checked by make_spec, for the default too) */
	path,	    /* a string, not empty, no NUL byte */
	window,	    /* bytes (integer or "1MiB"), at most 2^63 - 1: an off_t */
	block_size, /* bytes, a power of two in 512..4096 */
	flag,	    /* true or false */
	mode,	    /* octal string "0660" (or integer), read and write bits only */
	id,	    /* a uid or gid: 0..4294967294 (-1 means "unchanged" to chown) */
	lock,	    /* "auto", "on" or "off" (or a boolean: on, off) */
};

/* Where a setting goes in ImageSettings. */
using SettingField =
	std::variant<std::optional<std::string> ImageSettings::*,
		     std::optional<uint64_t> ImageSettings::*,
		     std::optional<uint32_t> ImageSettings::*, std::optional<bool> ImageSettings::*,
		     std::optional<LockMode> ImageSettings::*>;

/*
 * One per-image setting, written once: the manifest key (also the key of a
 * control attach request, and the name in messages), how its value is read
 * and checked, and the cgloopctl attach option that sets it.
 */
struct ImageSetting {
	std::string_view name; /* "size_limit" */
	SettingKind kind;
	SettingField field;
	bool image_only; /* an [[image]]'s own: never in [defaults] */
	/* cgloopctl attach: the option ("" : none; the path is attach's operand) */
	std::string_view option;  /* "sizelimit" */
	char short_option;	  /* 'o', or 0 */
	std::string_view metavar; /* flags: "" (no value) or "on|off" (an optional one) */
	std::string_view help;
};

/* Every per-image setting, in manifest order. */
inline constexpr ImageSetting image_settings[] = {
	{"name", SettingKind::name, &ImageSettings::name, true, "name", 0, "NAME",
	 "its file name (default: IMAGE's name)"},
	{"path", SettingKind::path, &ImageSettings::path, true, "", 0, "", ""},
	{"offset", SettingKind::window, &ImageSettings::offset, false, "offset", 'o', "SIZE",
	 "where the window starts in IMAGE"},
	{"size_limit", SettingKind::window, &ImageSettings::size_limit, false, "sizelimit", 0,
	 "SIZE", "the most bytes the window may have"},
	{"read_only", SettingKind::flag, &ImageSettings::read_only, false, "read-only", 'r', "",
	 "refuse writes, discards and truncation"},
	{"direct_io", SettingKind::flag, &ImageSettings::direct_io, false, "direct-io", 0, "on|off",
	 "O_DIRECT on IMAGE (on)"},
	{"block_size", SettingKind::block_size, &ImageSettings::block_size, false, "sector-size",
	 'b', "SIZE", "block size shown (512..4096)"},
	{"discard", SettingKind::flag, &ImageSettings::discard, false, "discard", 0, "",
	 "pass punch-hole and zero-range to IMAGE"},
	{"mode", SettingKind::mode, &ImageSettings::mode, false, "mode", 0, "MODE",
	 "permission bits, octal (IMAGE's)"},
	{"uid", SettingKind::id, &ImageSettings::uid, false, "uid", 0, "UID", "owner (IMAGE's)"},
	{"gid", SettingKind::id, &ImageSettings::gid, false, "gid", 0, "GID", "group (IMAGE's)"},
	{"lock", SettingKind::lock, &ImageSettings::lock, false, "lock", 0, "auto|on|off",
	 "QEMU-style locks on IMAGE (the mount's)"},
};

/* The names of image_settings, in order (for the man-page check and tests). */
inline constexpr auto image_setting_names = [] {
	std::array<std::string_view, std::size(image_settings)> names{};
	for (size_t i = 0; i < names.size(); i++)
		names[i] = image_settings[i].name;
	return names;
}();

/* The row of setting `name`, or nullptr. */
const ImageSetting *find_image_setting(std::string_view name);

/*
 * Read `value` into the setting `row` of `s`, checked as make_spec checks it:
 * nullopt, or why it is refused (the caller says where, which image and
 * which setting).
 */
std::optional<std::string> set_image_setting(ImageSettings &s, const ImageSetting &row,
					     const SettingValue &value);

/* One setting as written: its key, its value, and where ("m.toml:7", "attach"). */
struct WrittenSetting {
	std::string key;
	SettingValue value;
	std::string origin;
};

/*
 * The settings of one [[image]] (or of [defaults] when `is_defaults`), or of
 * an attach request, read through image_settings. Throws ConfigError naming
 * the place, the image (when it has a name) and the setting: unknown keys,
 * values of the wrong type or out of range, a name or path in [defaults].
 */
ImageSettings read_image_settings(const std::vector<WrittenSetting> &written, bool is_defaults);

/*
 * Why `name` is not a safe file name in the mount (empty, ".", "..", has '/',
 * NUL or a control character, longer than 255 bytes); nullopt when it is fine.
 */
std::optional<std::string> check_name(std::string_view name);

/* The block sizes a loop device accepts: a power of two in 512..4096. */
bool valid_block_size(uint64_t v);

/*
 * Complete `s` into an ImageSpec, or throw ConfigError naming the culprit.
 * Every setting is checked here too (settings made in code, the default name).
 */
ImageSpec make_spec(const ImageSettings &s, const std::string &origin);

/* Refuse duplicate names in a list of specs (ConfigError naming both places). */
void check_unique_names(const std::vector<ImageSpec> &specs);

/* `text` safe to print inside quotes: control bytes, NUL, '\\' and '"' as \xNN. */
std::string printable(std::string_view text);

/* 'm.toml:7: image "a": ' style prefix for messages (the name made printable). */
std::string describe(const std::string &origin, const std::string &name);

} /* namespace cgloopfs::config */
