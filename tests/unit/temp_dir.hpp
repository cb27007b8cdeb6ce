/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A temporary directory for a unit test, removed with what the test leaves in it. */
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

#include <doctest/doctest.h>

struct TempDir {
	std::string path;

	/* /tmp/cgl-NAME-XXXXXX */
	explicit TempDir(const std::string &name)
	{
		std::string tmpl = "/tmp/cgl-" + name + "-XXXXXX";
		REQUIRE(mkdtemp(tmpl.data()) != nullptr);
		path = tmpl;
	}
	~TempDir()
	{
		std::error_code ec;
		std::filesystem::remove_all(path, ec);
	}
	TempDir(const TempDir &) = delete;
	TempDir &operator=(const TempDir &) = delete;
};
