/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The manifest (cgloopfs.toml(5)): [defaults] plus [[image]] tables, parsed
 * with toml++ into ImageSpecs. Pure: parses text, opens no backing file.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CONFIG
#error "config/ is not a layer below this one (see src/meson.build)"
#endif

#include <string>
#include <string_view>
#include <vector>

#include "image_spec.hpp"

namespace cgloopfs::config {

/*
 * Parse manifest `text`; `filename` names it in messages and relative image
 * paths are taken relative to `base_dir`. Throws ConfigError with the line.
 */
std::vector<ImageSpec> parse_manifest(std::string_view text, const std::string &filename,
				      const std::string &base_dir);

/* A manifest file larger than this is refused unread. */
constexpr size_t max_manifest_bytes = 16 << 20;

/* Read and parse the manifest file at `path`. */
std::vector<ImageSpec> load_manifest(const std::string &path);

/*
 * A manifest that reproduces `specs` exactly (list --manifest). Throws
 * ConfigError, naming the image, for a name or path that is not UTF-8.
 */
std::string format_manifest(const std::vector<ImageSpec> &specs);

} /* namespace cgloopfs::config */
