/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The loop settings of one image, as a user wrote them (manifest, directory
 * or command line), before any file is opened. Plain values; reentrant.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CONFIG
#error "config/ is not a layer below this one (see src/meson.build)"
#endif

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
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

/* Names of every per-image setting, in manifest order (for --help, man page checks). */
extern const std::vector<std::string_view> image_setting_names;

/*
 * Why `name` is not a safe file name in the mount (empty, ".", "..", has '/',
 * NUL or a control character, longer than 255 bytes); nullopt when it is fine.
 */
std::optional<std::string> check_name(std::string_view name);

/* The block sizes a loop device accepts: a power of two in 512..4096. */
bool valid_block_size(uint64_t v);

/* Complete `s` into an ImageSpec, or throw ConfigError naming the culprit. */
ImageSpec make_spec(const ImageSettings &s, const std::string &origin);

/* Refuse duplicate names in a list of specs (ConfigError naming both places). */
void check_unique_names(const std::vector<ImageSpec> &specs);

/* `text` safe to print inside quotes: control bytes, NUL, '\\' and '"' as \xNN. */
std::string printable(std::string_view text);

/* 'm.toml:7: image "a": ' style prefix for messages (the name made printable). */
std::string describe(const std::string &origin, const std::string &name);

} /* namespace cgloopfs::config */
