/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "json_text.hpp"

#include <cstdio>
#include <vector>

#include "common/escape.hpp"

namespace cgloopfs::control {

namespace {

using nlohmann::json;

void dump_into(std::string &out, const json &v, int indent, int depth)
{
	auto newline = [&](int level) {
		if (indent < 0)
			return;
		out += '\n';
		out.append(static_cast<size_t>(indent) * static_cast<size_t>(level), ' ');
	};
	switch (v.type()) {
	case json::value_t::string:
		out += json_quote(v.get_ref<const std::string &>());
		return;
	case json::value_t::array: {
		if (v.empty()) {
			out += "[]";
			return;
		}
		out += '[';
		bool first = true;
		for (const auto &e : v) {
			if (!first)
				out += ',';
			first = false;
			newline(depth + 1);
			dump_into(out, e, indent, depth + 1);
		}
		newline(depth);
		out += ']';
		return;
	}
	case json::value_t::object: {
		if (v.empty()) {
			out += "{}";
			return;
		}
		out += '{';
		bool first = true;
		for (auto it = v.begin(); it != v.end(); ++it) {
			if (!first)
				out += ',';
			first = false;
			newline(depth + 1);
			out += json_quote(it.key());
			out += indent < 0 ? ":" : ": ";
			dump_into(out, it.value(), indent, depth + 1);
		}
		newline(depth);
		out += '}';
		return;
	}
	default:
		out += v.dump(); /* numbers, booleans, null: no text of ours */
	}
}

/*
 * The strings of a parsed text were replaced by "NNNNNNNNNN", their index
 * in `strings` (zero-padded: an object's keys keep their textual order);
 * put them back.
 */
json restore(json &&v, std::vector<std::string> &strings)
{
	switch (v.type()) {
	case json::value_t::string:
		return json(std::move(strings.at(std::stoul(v.get_ref<const std::string &>()))));
	case json::value_t::array:
		for (auto &e : v)
			e = restore(std::move(e), strings);
		return std::move(v);
	case json::value_t::object: {
		json out = json::object();
		for (auto it = v.begin(); it != v.end(); ++it)
			out[std::move(strings.at(std::stoul(it.key())))] =
				restore(std::move(it.value()), strings);
		return out;
	}
	default:
		return std::move(v);
	}
}

} /* namespace */

std::string dump_json(const json &value, int indent)
{
	std::string out;
	dump_into(out, value, indent, 0);
	return out;
}

json parse_json(std::string_view text)
{
	/*
	 * Each string literal is read here (json_unquote knows \udcNN) and
	 * replaced by its index, so nlohmann::json parses the structure and
	 * never sees a string.
	 */
	std::vector<std::string> strings;
	std::string skeleton;
	skeleton.reserve(text.size());
	for (size_t i = 0; i < text.size();) {
		if (text[i] != '"') {
			skeleton += text[i++];
			continue;
		}
		std::string s;
		size_t end = json_unquote(text, i, s);
		if (end == std::string_view::npos)
			return json(json::value_t::discarded);
		char index[16];
		std::snprintf(index, sizeof(index), "\"%010zu\"", strings.size());
		skeleton += index;
		strings.push_back(std::move(s));
		i = end;
	}
	json parsed = json::parse(skeleton, nullptr, false);
	if (parsed.is_discarded())
		return parsed;
	return restore(std::move(parsed), strings);
}

} /* namespace cgloopfs::control */
