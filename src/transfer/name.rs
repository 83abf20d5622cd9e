//! Names of received files, as the network gives them: checked to be one
//! plain file name before anything else happens (pure).

use super::packet::MAX_NAME;

/// Temporary files (when the filesystem cannot make anonymous ones) are
/// named `.socketeer-*.part`; names from the network may not start so.
pub const TEMP_PREFIX: &str = ".socketeer-";

/// The suffix of temporary files.
pub const TEMP_SUFFIX: &str = ".part";

/// True for names of the temporary files' pattern.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)
}

/// Checks a file name from the network.
///
/// # Errors
/// Why the name cannot be used, for the sender to read.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().all(|c| c == '.' || c.is_whitespace()) {
        return Err(format!("'{name}' is not a file name"));
    }
    if name.contains(['/', '\\']) {
        return Err(format!("'{name}' is a path, not a plain file name"));
    }
    if name.len() > MAX_NAME {
        return Err(format!("the file name is {} bytes long; names are at most {MAX_NAME}", name.len()));
    }
    if name.chars().any(char::is_control) {
        return Err("the file name holds control characters".to_owned());
    }
    if name.chars().any(is_invisible_format) {
        return Err(
            "the file name holds invisible formatting characters (such as a right-to-left override, \
                    which can disguise a file's extension)"
                .to_owned(),
        );
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(format!("'{name}' starts or ends with a space, which hides in listings"));
    }
    if name.starts_with(TEMP_PREFIX) {
        return Err(format!("names starting with {TEMP_PREFIX} are the receiver's own temporary files"));
    }
    Ok(())
}

/// Unicode format characters that change how a name is shown without being
/// seen: bidirectional controls, zero-width characters, the byte-order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_accepted() {
        let long = "a".repeat(256);
        for bad in [
            "",
            ".",
            "..",
            "...",
            " ",
            ". .",
            " lead",
            "trail ",
            "../etc/passwd",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "bell\u{7}",
            "a\u{202E}fdp.exe",
            ".socketeer-abc123.part",
            ".socketeer-",
            &long,
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["report.pdf", ".hidden", "naïve café.txt", "..dots", "a b", &"a".repeat(255)] {
            assert!(check_name(good).is_ok(), "{good:?} refused");
        }
    }
}
