//! The course guide (docs/course/) and its Python examples (examples/python/).
//!
//! The guide's commands are run by `guide.rs`, page by page, with these
//! conventions (docs/course/README.md states them for writers too):
//!
//! - Every line of a fenced ```sh block is a command, run with `sh -c` in a
//!   scratch directory (with links to the repository's `examples`, `src`,
//!   `docs`, `Cargo.toml` and `README.md`), with the binary under test first
//!   on the PATH. Lines ending in `\` continue on the next; `#` lines are
//!   comments; a leading `sudo ` is dropped (the suite runs as root).
//! - A command must exit 0, or the code its trailing `# exits N` comment names.
//! - A command ending in `&` is a server (or a capture): it is started in the
//!   background, is ready once it prints its first line (stdout or stderr),
//!   and is stopped at the end of the page; if it ended by itself, it must
//!   have succeeded. A line `wait $!` waits (30 s at most) for the latest
//!   of them to end by itself, successfully.
//! - Each page runs against its own `socketeer serve` on free ports: the
//!   default ports 7007, 1313, 3737, 12345, 5555 and 6969 in a command are
//!   replaced by that server's. Ports 9000 to 9099 are for the page's own
//!   servers: each number gets a free port, the same for the whole page.
//! - An HTML comment right before a block changes how it runs:
//!   `<!-- not run: REASON -->` skips it (a terminal, another machine);
//!   `<!-- waits for: socketeer check -->` skips it while that command does
//!   not exist, and runs it once it does.
//!
//! `index.rs` checks the index of the 112 items and every link; the
//! `python_*.rs` modules run the examples and check what they print.

mod background;
mod guide;
mod index;
mod markdown;
mod python_net;
mod python_threads;
