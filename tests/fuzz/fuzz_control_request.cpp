/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: the control protocol (control::parse_request and the
 * replies built around it) on arbitrary request lines. parse_request must
 * not throw; a request it accepts has a command and object args, and
 * survives format_request and a second parse unchanged; every reply is one
 * line of JSON that gives back exactly the bytes that went into it
 * (control/json_text.hpp); socket paths derived from any mount point fit in
 * sun_path.
 */
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "control/json_text.hpp"
#include "control/protocol.hpp"

using namespace cgloopfs::control;
using nlohmann::json;

namespace {

[[noreturn]] void broken(const char *what, std::string_view detail)
{
	std::fprintf(stderr, "fuzz_control_request: invariant broken: %s: %.*s\n", what,
		     static_cast<int>(std::min<size_t>(detail.size(), 300)), detail.data());
	std::abort();
}

/* One line, ending in its newline, of a JSON object. */
json one_line_object(const std::string &text, const char *what)
{
	if (text.empty() || text.back() != '\n' || text.find('\n') != text.size() - 1)
		broken(what, "not exactly one line");
	json j = parse_json(text);
	if (j.is_discarded() || !j.is_object())
		broken(what, "not a JSON object");
	return j;
}

} /* namespace */

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	std::string_view line(reinterpret_cast<const char *>(data), size);

	auto parsed = parse_request(line);
	if (auto *why = std::get_if<std::string>(&parsed)) {
		if (why->empty())
			broken("empty refusal", line);
		json e = one_line_object(error_reply(*why), "error_reply");
		if (e["ok"] != false || !e["error"].is_string())
			broken("error_reply", dump_json(e));
	} else {
		const Request &r = std::get<Request>(parsed);
		if (r.command.empty() || !r.args.is_object())
			broken("accepted request without command or object args", line);
		std::string again = format_request(r);
		if (again.empty() || again.back() != '\n')
			broken("format_request without newline", again);
		again.pop_back();
		auto reparsed = parse_request(again);
		auto *r2 = std::get_if<Request>(&reparsed);
		if (again.size() >= max_message) {
			/* Formatting added "args": the server refuses it as it would from a client. */
			if (r2)
				broken("accepted a request longer than max_message", again);
		} else if (!r2 || r2->command != r.command || r2->args != r.args) {
			broken("format_request round trip", again);
		}
		json ok = one_line_object(ok_reply(r.args), "ok_reply");
		if (ok["ok"] != true || ok["result"] != r.args)
			broken("ok_reply", dump_json(ok));
	}

	/*
	 * Replies carry text from anywhere (paths, names): any bytes. A path's
	 * worth of them (PATH_MAX) is enough here, and keeps 64 KiB inputs fast.
	 */
	std::string_view text = line.substr(0, 4096);
	json e = one_line_object(error_reply(text), "error_reply of raw bytes");
	if (e["error"] != std::string(text))
		broken("error_reply of raw bytes", dump_json(e));
	json ok = one_line_object(ok_reply(json(std::string(text))), "ok_reply of raw bytes");
	if (ok["result"] != std::string(text))
		broken("ok_reply of raw bytes", dump_json(ok));

	/* The control socket of any mount point fits in sun_path (107 bytes and a NUL). */
	std::string esc = escape_path(text);
	if (esc.empty() || esc.find('/') != std::string::npos)
		broken("escape_path", esc);
	for (uid_t uid : {0u, 1000u, 4294967294u}) {
		std::string path = default_socket_path("/run", text, uid);
		if (path.size() > 107 || path.find('\0') != std::string::npos)
			broken("default_socket_path", path);
	}
	return 0;
}
