/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * SOURCE of the mount turned into image specs: an image file, a directory of
 * images, or a manifest (*.toml). Reads the file system; no logging.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CONFIG
#error "config/ is not a layer below this one (see src/meson.build)"
#endif

#include <string>
#include <vector>

#include "image_spec.hpp"

namespace cgloopfs::config {

/* Throws ConfigError naming SOURCE when it cannot be used. */
std::vector<ImageSpec> load_source(const std::string &source);

} /* namespace cgloopfs::config */
