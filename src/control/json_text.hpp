/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * JSON text that carries any bytes: the control protocol's messages and
 * cgloopctl's --json output. nlohmann::json holds strings as bytes but
 * refuses to write or read invalid UTF-8 (dump() throws, and its parser
 * rejects the lone surrogates that could stand for it). These write and read
 * strings as common/escape.hpp's json_quote() and json_unquote() do: valid
 * UTF-8 as is, each byte NN of invalid UTF-8 as \udcNN (PEP 383), so a cgroup
 * path or a file name goes through byte for byte. Everything else is
 * nlohmann::json's. Pure, reentrant.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CONTROL
#error "control/ is not a layer below this one (see src/meson.build)"
#endif

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace cgloopfs::control {

/* `value` as JSON text: on one line (indent < 0) or indented as dump(indent). */
std::string dump_json(const nlohmann::json &value, int indent = -1);

/* Parse JSON text; a discarded value (is_discarded()) when it is malformed. */
nlohmann::json parse_json(std::string_view text);

} /* namespace cgloopfs::control */
