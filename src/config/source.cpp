/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "source.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include <dirent.h>
#include <sys/stat.h>

#include <fmt/core.h>

#include "manifest.hpp"

namespace cgloopfs::config {

namespace {

bool ends_with(const std::string &s, const std::string &suffix)
{
	return s.size() >= suffix.size() &&
	       s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<ImageSpec> load_directory(const std::string &dir)
{
	std::unique_ptr<DIR, int (*)(DIR *)> d(opendir(dir.c_str()), closedir);
	if (!d)
		throw ConfigError(fmt::format("source \"{}\": {}", dir, std::strerror(errno)));
	std::vector<std::string> names;
	errno = 0;
	while (struct dirent *e = readdir(d.get())) {
		std::string name = e->d_name;
		if (name == "." || name == "..")
			continue;
		std::string path = dir + (ends_with(dir, "/") ? "" : "/") + name;
		struct stat st;
		if (stat(path.c_str(), &st) < 0 || !S_ISREG(st.st_mode))
			continue; /* only regular files (or links to them) are images */
		names.push_back(name);
	}
	std::sort(names.begin(), names.end());
	std::vector<ImageSpec> specs;
	for (const auto &name : names) {
		ImageSettings s;
		s.name = name;
		s.path = dir + (ends_with(dir, "/") ? "" : "/") + name;
		specs.push_back(make_spec(s, fmt::format("source \"{}\"", dir)));
	}
	return specs;
}

} /* namespace */

std::vector<ImageSpec> load_source(const std::string &source)
{
	struct stat st;
	if (stat(source.c_str(), &st) < 0)
		throw ConfigError(fmt::format("source \"{}\": {}", source, std::strerror(errno)));
	if (S_ISDIR(st.st_mode))
		return load_directory(source);
	if (S_ISREG(st.st_mode) && ends_with(source, ".toml"))
		return load_manifest(source);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		throw ConfigError(fmt::format("source \"{}\": not a regular file, block device, "
					      "directory or manifest",
					      source));
	ImageSettings s;
	s.path = source;
	return {make_spec(s, "")};
}

} /* namespace cgloopfs::config */
