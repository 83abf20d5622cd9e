//! Reading a Python traceback that a program under test printed while it
//! kept running (a thread that died, say): the exception it names is often
//! the real cause of a failure, better than any guess from the outside.

/// The line that starts every Python traceback.
const START: &str = "Traceback (most recent call last):";

/// The traceback in `stderr` that explains most: the first one whose
/// exception is a classic ([`reading`]), else the last one (later ones are
/// often consequences of the first: a socket closed by a dying thread).
pub fn telling(stderr: &str) -> Option<&str> {
    let all: Vec<&str> = stderr.match_indices(START).map(|(at, _)| one(&stderr[at..])).collect();
    all.iter().find(|tb| reading(tb).is_some()).or(all.last()).copied()
}

/// The last traceback in `stderr`: from its first line to the exception.
pub fn last(stderr: &str) -> Option<&str> {
    stderr.rfind(START).map(|from| one(&stderr[from..]))
}

/// The traceback at the start of `rest`, to its exception line.
fn one(rest: &str) -> &str {
    // The exception is the first line after the start that is not indented.
    let mut end = rest.len();
    let mut offset = 0;
    for (i, line) in rest.split_inclusive('\n').enumerate() {
        if i > 0 && !line.starts_with([' ', '\t']) && !line.trim().is_empty() {
            end = offset + line.len();
            break;
        }
        offset += line.len();
    }
    rest[..end].trim_end()
}

/// What a traceback's exception means for a network program, in a
/// student's words, when it is one of the classic ones.
pub fn reading(traceback: &str) -> Option<&'static str> {
    let exception = traceback.lines().last()?.trim();
    let named = |names: &[&str]| names.iter().any(|n| exception.starts_with(n));
    if named(&["socket.timeout", "TimeoutError", "timeout:"]) {
        Some(
            "settimeout() applies to every blocking call on that socket, recv() as well as sendall(): \
             a client that says nothing for that long makes recv() raise socket.timeout (TimeoutError), \
             and an exception nobody catches ends the thread, and with it that client's part of the \
             program. Catch socket.timeout around recv() and carry on, or time out only the send.",
        )
    } else if named(&["UnicodeDecodeError"]) {
        Some(
            "decode() was called on a piece of the stream that ends in the middle of a character: \
             recv() cuts wherever it likes, even between the bytes of one UTF-8 character. Keep bytes \
             in the buffer and decode a line only once it is whole.",
        )
    } else if named(&["BrokenPipeError", "ConnectionResetError", "ConnectionAbortedError"]) {
        Some(
            "A client went away while the program was sending to it or reading from it, and the \
             error was not caught. Catch OSError around each client's send and recv, then drop that \
             client; the others must not notice.",
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STDERR: &str = "listening\nException in thread Thread-3 (serve):\nTraceback (most recent call last):\n  File \"chat.py\", line 30, in serve\n    data = conn.recv(1024)\nTimeoutError: timed out\nmore output\n";

    #[test]
    fn the_last_traceback_ends_at_its_exception() {
        let tb = last(STDERR).unwrap();
        assert!(tb.starts_with(START) && tb.ends_with("TimeoutError: timed out"), "{tb}");
        assert!(tb.contains("\n    data = conn.recv(1024)\n"), "indentation kept: {tb}");
        assert_eq!(last("no traceback here"), None);
    }

    #[test]
    fn the_telling_traceback_is_the_classic_one() {
        let two = format!(
            "{STDERR}Traceback (most recent call last):\n  File \"x\"\nOSError: [Errno 9] Bad file descriptor\n"
        );
        assert!(telling(&two).unwrap().ends_with("TimeoutError: timed out"));
        assert!(last(&two).unwrap().ends_with("Bad file descriptor"));
    }

    #[test]
    fn classic_exceptions_are_read() {
        assert!(reading(last(STDERR).unwrap()).unwrap().contains("settimeout()"));
        let decode = "Traceback (most recent call last):\n  File \"x\", line 1\nUnicodeDecodeError: 'utf-8' codec can't decode byte 0xc3";
        assert!(reading(decode).unwrap().contains("decode a line only once it is whole"));
        assert_eq!(reading("Traceback (most recent call last):\nKeyError: 'x'"), None);
    }
}
