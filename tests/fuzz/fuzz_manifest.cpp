/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: the manifest parser (config::parse_manifest) on
 * arbitrary text. It may refuse with ConfigError only; any other exception,
 * crash or sanitizer report is a finding. What it accepts must be complete
 * and within the documented bounds, and must survive format_manifest (what
 * `cgloopctl list --manifest` prints) and a second parse unchanged.
 */
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "config/image_spec.hpp"
#include "config/manifest.hpp"

using namespace cgloopfs::config;

namespace {

[[noreturn]] void broken(const char *what, const std::string &detail)
{
	std::fprintf(stderr, "fuzz_manifest: invariant broken: %s: %.300s\n", what, detail.c_str());
	std::abort();
}

void check_spec(const ImageSpec &s)
{
	if (check_name(s.name))
		broken("accepted a bad name", printable(s.name));
	if (s.path.empty() || s.path.find('\0') != std::string::npos)
		broken("accepted a bad path", printable(s.path));
	if (s.path.front() != '/')
		broken("relative path with a base directory", printable(s.path));
	if (s.offset > static_cast<uint64_t>(INT64_MAX) ||
	    s.size_limit > static_cast<uint64_t>(INT64_MAX))
		broken("window beyond 2^63 - 1", s.name);
	if (!valid_block_size(s.block_size))
		broken("bad block size", std::to_string(s.block_size));
	if (s.mode && (*s.mode & ~0666u))
		broken("mode with bits other than rw", std::to_string(*s.mode));
	if ((s.uid && *s.uid == UINT32_MAX) || (s.gid && *s.gid == UINT32_MAX))
		broken("uid or gid -1", s.name);
}

bool same(const ImageSpec &a, const ImageSpec &b)
{
	return a.name == b.name && a.path == b.path && a.offset == b.offset &&
	       a.size_limit == b.size_limit && a.read_only == b.read_only &&
	       a.direct_io == b.direct_io && a.block_size == b.block_size &&
	       a.discard == b.discard && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid;
}

} /* namespace */

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	std::string_view text(reinterpret_cast<const char *>(data), size);
	std::vector<ImageSpec> specs;
	try {
		specs = parse_manifest(text, "fuzz.toml", "/base");
	} catch (const ConfigError &e) {
		std::string_view why = e.what();
		if (why.empty() || why.find('\n') != std::string_view::npos)
			broken("error message is not one line", e.what());
		return 0;
	}
	for (const auto &s : specs)
		check_spec(s);

	std::string again = format_manifest(specs);
	std::vector<ImageSpec> reparsed;
	try {
		reparsed = parse_manifest(again, "again.toml", "/elsewhere");
	} catch (const ConfigError &e) {
		broken("format_manifest output refused", std::string(e.what()) + "\n" + again);
	}
	if (reparsed.size() != specs.size())
		broken("round trip changed the image count", again);
	for (size_t i = 0; i < specs.size(); i++)
		if (!same(specs[i], reparsed[i]))
			broken("round trip changed an image", again);
	return 0;
}
