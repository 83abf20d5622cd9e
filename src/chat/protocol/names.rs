//! Nicknames and room names: what they may hold, and when two of them are
//! the same name.

/// The longest nickname or room name, in characters.
pub const MAX_NAME: usize = 32;

/// Characters allowed in names besides letters and digits (of any script).
const NAME_PUNCTUATION: &str = "-_.[]{}|^`'";

/// A name (nickname or room) that breaks the rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or longer than [`MAX_NAME`] characters.
    #[error("{kind} {name:?} must be 1 to {MAX_NAME} characters long")]
    Length {
        /// "nickname" or "room name".
        kind: &'static str,
        /// The name as given.
        name: String,
    },
    /// A character outside letters, digits and ``-_.[]{}|^`'``.
    #[error("{kind}s may not contain {bad:?}: use letters, digits and - _ . [ ] {{ }} | ^ ` '")]
    BadChar {
        /// "nickname" or "room name".
        kind: &'static str,
        /// The first offending character.
        bad: char,
    },
}

/// Checks a nickname (`kind` "nickname") or room name ("room name"): 1 to
/// [`MAX_NAME`] characters, each a letter, a digit or one of `-_.[]{}|^`'`.
///
/// # Errors
/// The first rule the name breaks.
pub fn check_name<'a>(kind: &'static str, name: &'a str) -> Result<&'a str, NameError> {
    if let Some(bad) = name.chars().find(|&c| !(c.is_alphanumeric() || NAME_PUNCTUATION.contains(c))) {
        return Err(NameError::BadChar { kind, bad });
    }
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(NameError::Length { kind, name: name.to_owned() });
    }
    Ok(name)
}

/// The key under which a name is unique: two names are the same name when
/// they look alike. The key is the name's confusables skeleton (Unicode
/// TS #39, section 4: `аlice` with a Cyrillic `а`, `ａｌｉｃｅ` in fullwidth
/// letters, `𝐚𝐥𝐢𝐜𝐞` in mathematical bold and `alice` all have the skeleton
/// `alice`) once lowercased, so that case does not matter either (`ALICE`
/// is alice). Lowercasing comes first: the skeleton of a capital I is an l,
/// which would make `ALICE` and `ALLCE` one name. The key is for comparing
/// and for Redis keys, never shown.
pub fn fold(name: &str) -> String {
    unicode_security::skeleton(&name.to_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        assert_eq!(check_name("nickname", "alice_2[x]"), Ok("alice_2[x]"));
        assert_eq!(check_name("nickname", "Zoë"), Ok("Zoë"));
        assert!(matches!(check_name("nickname", "a b"), Err(NameError::BadChar { bad: ' ', .. })));
        assert!(matches!(check_name("nickname", "<alice>"), Err(NameError::BadChar { bad: '<', .. })));
        assert!(matches!(check_name("nickname", "a\x1b"), Err(NameError::BadChar { bad: '\x1b', .. })));
        assert!(matches!(check_name("room name", &"x".repeat(33)), Err(NameError::Length { .. })));
        assert_eq!(check_name("room name", &"é".repeat(32)).map(str::len), Ok(64));
    }

    #[test]
    fn names_that_look_alike_fold_to_one_key() {
        let alice = fold("alice");
        for lookalike in [
            "AlIcE",
            "ALICE",
            "\u{430}lice",                                   // Cyrillic а
            "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}",      // fullwidth
            "\u{1d41a}\u{1d425}\u{1d422}\u{1d41c}\u{1d41e}", // mathematical bold
        ] {
            assert_eq!(fold(lookalike), alice, "{lookalike:?}");
        }
        assert_eq!(fold("ZOË"), fold("zoë"));
        assert_eq!(fold("Zoe\u{308}"), fold("zoë"), "decomposed and composed are one name");
        for different in ["alicia", "bob", "alice2", "al", "allce"] {
            assert_ne!(fold(different), alice, "{different:?}");
        }
    }
}
