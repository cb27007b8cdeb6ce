/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "names.hpp"

#include <cstdlib>
#include <vector>

#include <systemd/sd-daemon.h>
#include <systemd/sd-login.h>

#include "common/strings.hpp"

namespace cgloopfs::cgroup {

namespace {

constexpr std::string_view unit_types[] = {"service",	"socket", "device", "mount",
					   "automount", "swap",	  "target", "path",
					   "timer",	"slice",  "scope"};

bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool ends_with(std::string_view s, std::string_view end)
{
	return s.size() >= end.size() && s.substr(s.size() - end.size()) == end;
}

bool is_slice(std::string_view name)
{
	return ends_with(name, ".slice") && is_unit_name(name);
}

/* A user manager's unit: "user@1000.service". */
bool is_user_manager(std::string_view name)
{
	return name.substr(0, 5) == "user@" && ends_with(name, ".service") && is_unit_name(name);
}

/* A machine name as systemd-machined takes it (a host name): [A-Za-z0-9_.-], 1..64. */
bool is_machine_name(std::string_view name)
{
	if (name.empty() || name.size() > 64 || name.front() == '-' || name.front() == '.')
		return false;
	for (char c : name)
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	return true;
}

/* What libsystemd's sd_pid_get_*() give: a string (freed here), or "". */
template <typename F> std::string ask(F &&get)
{
	char *s = nullptr;
	if (get(&s) < 0 || !s)
		return {};
	std::string out(s);
	std::free(s);
	return out;
}

} /* namespace */

bool is_unit_name(std::string_view name)
{
	if (name.empty() || name.size() > 255)
		return false;
	size_t dot = name.rfind('.');
	if (dot == std::string_view::npos || dot == 0)
		return false;
	std::string_view type = name.substr(dot + 1);
	bool known = false;
	for (auto t : unit_types)
		known = known || t == type;
	if (!known || name.front() == '@' || name.front() == '.')
		return false;
	size_t ats = 0;
	for (size_t i = 0; i < dot; i++) {
		char c = name[i];
		if (c == '\\') {
			if (i + 3 >= dot || name[i + 1] != 'x' || !is_hex(name[i + 2]) ||
			    !is_hex(name[i + 3]))
				return false;
			i += 3;
			continue;
		}
		if (c == '@')
			ats++;
		else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == ':' || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return ats <= 1;
}

std::string unescape_unit_name(std::string_view name)
{
	std::string out;
	for (size_t i = 0; i < name.size(); i++) {
		if (name[i] == '\\' && i + 3 < name.size() && name[i + 1] == 'x' &&
		    is_hex(name[i + 2]) && is_hex(name[i + 3])) {
			out += static_cast<char>(
				std::stoi(std::string(name.substr(i + 2, 2)), nullptr, 16));
			i += 3;
		} else {
			out += name[i];
		}
	}
	return out;
}

SystemdNames names_from_path(std::string_view path)
{
	std::vector<std::string_view> parts;
	for (auto p : split(path, '/'))
		if (!p.empty())
			parts.push_back(p);
	SystemdNames n;
	size_t i = 0;
	/* A prefix systemd does not name (a delegated subtree, a foreign namespace's root). */
	while (i < parts.size() && !is_unit_name(parts[i]))
		i++;
	std::string_view top_slice;
	while (i < parts.size() && is_slice(parts[i])) {
		if (top_slice.empty())
			top_slice = parts[i];
		i++;
	}
	if (i >= parts.size() || !is_unit_name(parts[i]))
		return n;
	std::string_view unit = parts[i++];
	n.unit = std::string(unit);
	if (is_user_manager(unit)) {
		while (i < parts.size() && is_slice(parts[i]))
			i++;
		if (i < parts.size() && is_unit_name(parts[i])) {
			/* Not `"/" + std::string(...)`: GCC 12 -O3 warns (-Wrestrict) on it. */
			n.unit += '/';
			n.unit += parts[i];
		}
	}
	constexpr std::string_view prefix = "machine-", suffix = ".scope";
	if (top_slice == "machine.slice" && unit.substr(0, prefix.size()) == prefix &&
	    ends_with(unit, suffix)) {
		std::string name = unescape_unit_name(
			unit.substr(prefix.size(), unit.size() - prefix.size() - suffix.size()));
		if (is_machine_name(name))
			n.machine = name;
	}
	return n;
}

SystemdNames names_of(pid_t tid, std::string_view path)
{
	SystemdNames from_path = names_from_path(path);
	/*
	 * libsystemd reads /proc/TID/cgroup and PID 1's for each question
	 * (0.45 ms for the three here, where /proc is slow): ask only where
	 * systemd manages the host, as its own tools do (sd_booted()).
	 */
	static const bool systemd_host = sd_booted() > 0;
	if (tid <= 0 || !systemd_host)
		return from_path;
	std::string unit = ask([&](char **s) { return sd_pid_get_unit(tid, s); });
	if (!is_unit_name(unit))
		return from_path;
	SystemdNames n;
	n.unit = unit;
	if (is_user_manager(unit)) {
		std::string user = ask([&](char **s) { return sd_pid_get_user_unit(tid, s); });
		if (is_unit_name(user))
			n.unit += "/" + user;
	}
	std::string machine = ask([&](char **s) { return sd_pid_get_machine_name(tid, s); });
	if (is_machine_name(machine))
		n.machine = machine;
	else if (from_path.unit == n.unit)
		n.machine = from_path.machine;
	return n;
}

} /* namespace cgloopfs::cgroup */
