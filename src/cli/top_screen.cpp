/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgloopctl top, the terminal and the loop: read "stats" every --delay
 * seconds and show the interval's rows, either redrawn on the alternate
 * screen of a terminal (keys change the order, q quits) or, with --batch or
 * when standard output is no terminal, printed one table after another.
 *
 * The terminal is put back (its modes, the normal screen, the cursor) on
 * every way out: q, the end of --iterations, an error, SIGINT, SIGTERM and
 * SIGHUP; Ctrl-Z leaves it too and comes back on SIGCONT. Signals reach the
 * loop through a pipe, so none is lost between two polls. Thread-bound:
 * one loop per process (the signal handlers are process-wide).
 */
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <clocale>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <fmt/core.h>

#include "cli/top.hpp"
#include "common/escape.hpp"
#include "common/unique_fd.hpp"
#include "control/client.hpp"

namespace cgloopfs::cli::top {

namespace {

using nlohmann::json;

/* The write end of the signal pipe, for the handler. */
volatile sig_atomic_t signal_fd = -1;

extern "C" void on_signal(int sig)
{
	int saved = errno;
	auto b = static_cast<unsigned char>(sig);
	if (signal_fd >= 0)
		(void)!write(signal_fd, &b, 1);
	errno = saved;
}

/* Catches the signals the loop handles while it lives; puts the old handlers back. */
class SignalPipe
{
public:
	explicit SignalPipe(bool interactive)
	{
		int fds[2];
		if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
			throw control::ClientError(fmt::format("pipe: {}", std::strerror(errno)));
		read_.reset(fds[0]);
		write_.reset(fds[1]);
		signal_fd = fds[1];
		signals_ = {SIGINT, SIGTERM, SIGHUP};
		if (interactive)
			signals_.insert(signals_.end(), {SIGWINCH, SIGTSTP, SIGCONT});
		old_.resize(signals_.size());
		for (size_t i = 0; i < signals_.size(); i++)
			catch_signal(signals_[i], &old_[i]);
	}
	~SignalPipe()
	{
		for (size_t i = 0; i < signals_.size(); i++)
			sigaction(signals_[i], &old_[i], nullptr);
		signal_fd = -1;
	}
	SignalPipe(const SignalPipe &) = delete;
	SignalPipe &operator=(const SignalPipe &) = delete;

	int fd() const { return read_.get(); }

	/* The signals caught since the last call, in order. */
	std::vector<int> take()
	{
		std::vector<int> out;
		unsigned char buf[64];
		ssize_t n;
		while ((n = read(read_.get(), buf, sizeof(buf))) > 0)
			out.insert(out.end(), buf, buf + n);
		return out;
	}

	static void catch_signal(int sig, struct sigaction *old)
	{
		struct sigaction sa = {};
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_RESTART;
		sigaction(sig, &sa, old);
	}

private:
	UniqueFd read_, write_;
	std::vector<int> signals_;
	std::vector<struct sigaction> old_;
};

/* Writes all of `s` to `fd`; a terminal that went away ends the program. */
void write_all(int fd, std::string_view s)
{
	while (!s.empty()) {
		ssize_t n = write(fd, s.data(), s.size());
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			throw control::ClientError(fmt::format("cannot write to the terminal: {}",
							       std::strerror(errno)));
		s.remove_prefix(static_cast<size_t>(n));
	}
}

/*
 * The terminal while top shows on it: keys without echo or line editing
 * (Ctrl-C and Ctrl-Z still send their signals), the alternate screen, no
 * cursor. leave() (and the destructor) put back what enter() changed.
 */
class Screen
{
public:
	Screen() : keys_(isatty(STDIN_FILENO) == 1) {}
	~Screen() { leave(); }
	Screen(const Screen &) = delete;
	Screen &operator=(const Screen &) = delete;

	bool keys() const { return keys_; }

	/* Also again after SIGCONT (a shell may have set its own modes): the first modes are kept. */
	void enter()
	{
		if (keys_ && !modes_set_ && tcgetattr(STDIN_FILENO, &saved_) == 0)
			modes_set_ = true; /* leave() puts saved_ back */
		if (modes_set_) {
			struct termios raw = saved_;
			raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
			raw.c_cc[VMIN] = 1;
			raw.c_cc[VTIME] = 0;
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
		}
		/* The alternate screen, the cursor hidden, the screen cleared. */
		write_all(STDOUT_FILENO, "\033[?1049h\033[?25l\033[H\033[2J");
		entered_ = true;
	}

	void leave() noexcept
	{
		if (entered_) {
			entered_ = false;
			/* Attributes off, the cursor shown, the normal screen back. */
			const char restore[] = "\033[0m\033[?25h\033[?1049l";
			(void)!write(STDOUT_FILENO, restore, sizeof(restore) - 1);
		}
		if (modes_set_) {
			modes_set_ = false;
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
		}
	}

	/* Rows and columns; 24x80 if the terminal does not say. */
	std::pair<size_t, size_t> size() const
	{
		struct winsize ws = {};
		if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
			return {ws.ws_row, ws.ws_col};
		return {24, 80};
	}

	/* Replace the screen with `lines` (each at most as wide as the screen). */
	void draw(const std::vector<std::string> &lines)
	{
		std::string out = "\033[H";
		for (size_t i = 0; i < lines.size(); i++) {
			out += lines[i];
			out += "\033[K";
			if (i + 1 < lines.size())
				out += "\r\n";
		}
		out += "\033[J";
		write_all(STDOUT_FILENO, out);
	}

private:
	bool keys_;
	bool entered_ = false, modes_set_ = false;
	struct termios saved_ = {};
};

double now_seconds()
{
	using namespace std::chrono;
	return duration<double>(steady_clock::now().time_since_epoch()).count();
}

/* What the title calls the mount: as given, else the only one, else the socket. */
std::string mount_label(const Invocation &inv, const std::string &socket)
{
	if (!inv.operands.empty())
		return inv.operands[0];
	if (inv.has("mount"))
		return inv.get("mount");
	if (!inv.has("socket")) {
		auto mounts = control::cgloopfs_mounts();
		if (mounts.size() == 1)
			return mounts[0];
	}
	return socket;
}

const char *const keys_help =
	"keys: q quit, i c u m r w R W Q f p order, < > next column, space refresh";

class Top
{
public:
	Top(const Options &o, std::string socket, std::string label)
		: o_(o), order_(o.order), socket_(std::move(socket)), label_(std::move(label))
	{
	}

	/* Runs until q, --iterations or a signal; the signal that ended it, or 0. */
	int loop(bool interactive)
	{
		SignalPipe signals(interactive);
		Screen screen;
		prev_ = take();
		rows_ = make_rows(nullptr, prev_);
		double deadline = prev_.seconds + o_.delay;
		uint64_t done = 0;
		if (interactive) {
			screen.enter();
			draw(screen);
		}
		for (;;) {
			double wait = deadline - now_seconds();
			if (wait > 0) {
				pollfd fds[2] = {{signals.fd(), POLLIN, 0},
						 {interactive && screen.keys() && keys_open_
							  ? STDIN_FILENO
							  : -1,
						  POLLIN, 0}};
				int ms = static_cast<int>(std::ceil(wait * 1000));
				if (poll(fds, 2, ms) < 0 && errno != EINTR)
					throw control::ClientError(
						fmt::format("poll: {}", std::strerror(errno)));
				for (int sig : signals.take()) {
					switch (sig) {
					case SIGINT:
						return 0;
					case SIGTERM:
					case SIGHUP:
						return sig;
					case SIGTSTP:
						suspend(screen);
						break;
					case SIGCONT:
						screen.enter();
						break;
					default: /* SIGWINCH */
						break;
					}
					if (interactive)
						draw(screen);
				}
				if (fds[1].fd >= 0 && (fds[1].revents & (POLLIN | POLLHUP))) {
					switch (read_keys()) {
					case KeyAction::quit:
						return 0;
					case KeyAction::refresh:
						deadline = now_seconds();
						break;
					case KeyAction::redraw:
						draw(screen);
						break;
					case KeyAction::none:
						break;
					}
				}
				continue;
			}
			Reading cur = take();
			interval_ = cur.seconds - prev_.seconds;
			rows_ = make_rows(&prev_, cur);
			prev_ = std::move(cur);
			done++;
			if (interactive)
				draw(screen);
			else
				print();
			if (o_.iterations && done >= o_.iterations)
				return 0;
			deadline += o_.delay;
			if (deadline < now_seconds())
				deadline = now_seconds() + o_.delay;
		}
	}

private:
	enum class KeyAction { none, redraw, refresh, quit };

	Reading take()
	{
		json r = control::call(socket_, {"stats", json::object()});
		try {
			return parse_reading(r, now_seconds());
		} catch (const std::runtime_error &e) {
			throw control::ClientError(e.what());
		}
	}

	std::string title() const
	{
		return fmt::format("cgloopctl top: {}  every {}s  order: {}",
				   escape_for_terminal(label_), o_.delay, order_.name());
	}

	void draw(Screen &screen)
	{
		auto [height, width] = screen.size();
		sort_rows(rows_, order_);
		auto widths = layout(rows_, width);
		std::vector<std::string> lines;
		lines.push_back(fit(title(), width));
		lines.push_back(fit(rows_.empty() || rows_.front().rates
					    ? totals_line(rows_)
					    : "total: waiting for the first interval",
				    width));
		lines.push_back(fit(keys_help, width));
		lines.push_back("");
		std::string plain = header_line(widths, order_, false);
		std::string header =
			display_width(plain) <= width
				? header_line(widths, order_, true) +
					  std::string(width - display_width(plain), ' ')
				: fit(plain, width);
		lines.push_back("\033[7m" + header + "\033[0m");
		for (const auto &r : rows_) {
			if (lines.size() >= height)
				break;
			lines.push_back(fit(row_line(r, widths), width));
		}
		lines.resize(std::min(lines.size(), height));
		screen.draw(lines);
	}

	void print()
	{
		sort_rows(rows_, order_);
		std::string out;
		if (o_.json) {
			out = rows_json(rows_, order_, interval_)
				      .dump(-1, ' ', false, json::error_handler_t::replace) +
			      "\n";
		} else {
			auto widths = layout(rows_, 0);
			out = title() + "\n" + totals_line(rows_) + "\n" +
			      header_line(widths, order_, false) + "\n";
			for (const auto &r : rows_)
				out += row_line(r, widths) + "\n";
			out += "\n";
		}
		std::fputs(out.c_str(), stdout);
		if (std::fflush(stdout) != 0)
			throw control::ClientError(
				fmt::format("cannot write the output: {}", std::strerror(errno)));
	}

	/* Ctrl-Z: the terminal back as it was, stop; on SIGCONT, take it again. */
	void suspend(Screen &screen)
	{
		screen.leave();
		struct sigaction dfl = {}, old = {};
		dfl.sa_handler = SIG_DFL;
		sigemptyset(&dfl.sa_mask);
		sigaction(SIGTSTP, &dfl, &old);
		raise(SIGTSTP);
		/* Stopped here until SIGCONT. */
		sigaction(SIGTSTP, &old, nullptr);
		screen.enter();
	}

	KeyAction read_keys()
	{
		unsigned char buf[64];
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n == 0) {
			keys_open_ = false; /* the terminal hung up: keys are over */
			return KeyAction::none;
		}
		if (n < 0)
			return KeyAction::none;
		KeyAction action = KeyAction::none;
		for (ssize_t i = 0; i < n; i++) {
			char k = static_cast<char>(buf[i]);
			/* The arrow keys: ESC [ C (right) and ESC [ D (left); other sequences are skipped. */
			if (k == '\033') {
				if (i + 2 < n && buf[i + 1] == '[') {
					k = buf[i + 2] == 'C' ? '>' : buf[i + 2] == 'D' ? '<' : 0;
					i += 2;
				} else {
					continue;
				}
			}
			if (k == 'q')
				return KeyAction::quit;
			if (k == ' ') {
				action = KeyAction::refresh;
				continue;
			}
			std::optional<Order> o;
			if (k == '<' || k == '>')
				o = step_order(order_, k == '>' ? 1 : -1);
			else if (k)
				o = order_for_key(k);
			if (o) {
				order_ = *o;
				if (action == KeyAction::none)
					action = KeyAction::redraw;
			}
		}
		return action;
	}

	Options o_;
	Order order_;
	std::string socket_, label_;
	bool keys_open_ = true;
	Reading prev_;
	std::vector<Row> rows_;
	double interval_ = 0;
};

} /* namespace */

int run(const Invocation &inv, const std::string &socket)
{
	Options o = parse_options(inv);
	/* wcwidth() for the widths of names, in the terminal's character set. */
	std::setlocale(LC_CTYPE, "");
	bool interactive = !o.batch && isatty(STDOUT_FILENO) == 1;
	int sig = Top(o, socket, mount_label(inv, socket)).loop(interactive);
	if (sig) {
		/* Terminated: the terminal is back; end as the signal would have. */
		std::fflush(stdout);
		std::signal(sig, SIG_DFL);
		raise(sig);
	}
	return EXIT_SUCCESS;
}

} /* namespace cgloopfs::cli::top */
