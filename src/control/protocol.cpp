/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "protocol.hpp"

#include <sys/socket.h>

#include <fmt/core.h>

#include "json_text.hpp"

namespace cgloopfs::control {

namespace {

/*
 * Whether arrays and objects nest deeper than `limit` in `line`: counts '['
 * and '{' outside strings, exact for valid JSON. nlohmann::json parses
 * without recursing, but copies, compares and prints with it, and a 64 KiB
 * line can nest 32000 deep: enough to overflow a thread's stack in a
 * sanitizer build (found by tests/fuzz/fuzz_control_request).
 */
bool nested_deeper_than(std::string_view line, size_t limit)
{
	size_t depth = 0;
	bool in_string = false;
	for (size_t i = 0; i < line.size(); i++) {
		char c = line[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{') {
			if (++depth > limit)
				return true;
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return false;
}

} /* namespace */

std::variant<Request, std::string> parse_request(std::string_view line)
{
	if (line.size() >= max_message)
		return std::string("message too long");
	if (nested_deeper_than(line, max_nesting))
		return fmt::format("malformed message: nested more than {} deep", max_nesting);
	nlohmann::json j = parse_json(line);
	if (j.is_discarded())
		return std::string("malformed message: not JSON");
	if (!j.is_object())
		return std::string("malformed message: not a JSON object");
	auto v = j.find("version");
	if (v == j.end() || !v->is_number_integer())
		return std::string("malformed message: no version");
	if (*v != protocol_version)
		return fmt::format("unsupported protocol version {} (this daemon speaks {})",
				   v->dump(), protocol_version);
	auto c = j.find("command");
	if (c == j.end() || !c->is_string() || c->get<std::string>().empty())
		return std::string("malformed message: no command");
	Request r;
	r.command = c->get<std::string>();
	auto a = j.find("args");
	if (a != j.end()) {
		if (!a->is_object())
			return std::string("malformed message: args must be an object");
		r.args = *a;
	}
	return r;
}

void LineReader::append(std::string_view data)
{
	if (start_ > 0 && start_ == in_.size()) {
		in_.clear();
		start_ = 0;
	} else if (start_ > 0 && start_ >= in_.size() / 2) {
		in_.erase(0, start_);
		start_ = 0;
	}
	in_.append(data);
}

std::optional<std::string> LineReader::next_line()
{
	size_t nl = in_.find('\n', start_ + scanned_);
	if (nl == std::string::npos) {
		scanned_ = in_.size() - start_;
		return std::nullopt;
	}
	std::string line = in_.substr(start_, nl - start_);
	start_ = nl + 1;
	scanned_ = 0;
	return line;
}

void LineReader::clear()
{
	in_.clear();
	start_ = 0;
	scanned_ = 0;
}

std::string format_request(const Request &request)
{
	nlohmann::json j = {{"version", protocol_version},
			    {"command", request.command},
			    {"args", request.args}};
	return dump_json(j) + "\n";
}

std::string ok_reply(const nlohmann::json &result)
{
	nlohmann::json j = {{"ok", true}, {"result", result}};
	return dump_json(j) + "\n";
}

std::string error_reply(std::string_view message)
{
	nlohmann::json j = {{"ok", false}, {"error", std::string(message)}};
	return dump_json(j) + "\n";
}

std::optional<sockaddr_un> socket_address(std::string_view path)
{
	sockaddr_un addr{};
	if (path.size() >= sizeof(addr.sun_path))
		return std::nullopt;
	addr.sun_family = AF_UNIX;
	path.copy(addr.sun_path, path.size());
	return addr;
}

std::string escape_path(std::string_view path)
{
	while (!path.empty() && path.front() == '/')
		path.remove_prefix(1);
	while (!path.empty() && path.back() == '/')
		path.remove_suffix(1);
	if (path.empty())
		return "-";
	std::string out;
	for (size_t i = 0; i < path.size(); i++) {
		unsigned char c = static_cast<unsigned char>(path[i]);
		if (c == '/')
			out += '-';
		else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '_' || (c == '.' && i > 0))
			out += static_cast<char>(c);
		else
			out += fmt::format("\\x{:02x}", c);
	}
	return out;
}

std::string default_socket_path(std::string_view runstatedir, std::string_view mountpoint,
				uid_t uid)
{
	std::string dir = uid == 0 ? fmt::format("{}/cgloopfs", runstatedir)
				   : fmt::format("/run/user/{}/cgloopfs", uid);
	std::string name = escape_path(mountpoint);
	/* sun_path holds 107 bytes and a NUL. */
	if (dir.size() + 1 + name.size() + 5 > 107) {
		uint64_t h = 1469598103934665603ULL; /* FNV-1a */
		for (char c : mountpoint) {
			h ^= static_cast<unsigned char>(c);
			h *= 1099511628211ULL;
		}
		name = fmt::format("{:016x}", h);
	}
	return fmt::format("{}/{}.sock", dir, name);
}

} /* namespace cgloopfs::control */
