/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Parsing of the numbers users write: sizes with suffixes, plain unsigned
 * integers, octal modes. Pure functions, reentrant; no logging.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CONFIG
#error "config/ is not a layer below this one (see src/meson.build)"
#endif

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cgloopfs::config {

/*
 * "4096", "1MiB", "2G", "512K", "1MB" -> bytes. K/M/G/T and KiB/MiB/GiB/TiB are
 * powers of 1024 (as losetup and mount read them), KB/MB/GB/TB powers of 1000.
 * Returns nullopt and sets *ret_why on a malformed or overflowing value.
 */
std::optional<uint64_t> parse_size(std::string_view text, std::string *ret_why = nullptr);

/* Decimal unsigned integer within [min, max]; nullopt with a reason otherwise. */
std::optional<uint64_t> parse_uint(std::string_view text, uint64_t min, uint64_t max,
				   std::string *ret_why = nullptr);

/* File mode as octal digits ("0660", "660"); only read/write bits allowed. */
std::optional<uint32_t> parse_mode(std::string_view text, std::string *ret_why = nullptr);

/* Why `mode` is not a mode of an exported image (bits other than rw); nullopt if it is. */
std::optional<std::string> check_mode(uint64_t mode);

/* Human form of a byte count: "512MiB" when exact, else bytes. */
std::string format_size(uint64_t bytes);

} /* namespace cgloopfs::config */
