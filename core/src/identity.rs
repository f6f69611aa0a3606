//! The one form of the text that names things: `client_id`, `metric` and
//! `event_id`, as events store them and queries and filters look them up.
//!
//! Text that looks the same must be the same client: `caf\u{e9}`,
//! `cafe\u{301}` (the accent as a combining mark) and `caf\u{e9}\u{200b}`
//! (with a zero-width space) are one name. So the text is put in Unicode
//! Normalization Form C (composed), every invisible format character
//! (general category Cf: zero-width spaces and joiners, the byte order mark,
//! soft hyphens, bidirectional controls) is removed, and Unicode whitespace
//! is trimmed from both ends. ASCII text, which has no format characters
//! and is already in NFC, is only trimmed.

use std::borrow::Cow;

use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// `text` in the one form names are stored in (see the module).
pub fn identity(text: &str) -> Cow<'_, str> {
    let trimmed = text.trim();
    if trimmed.is_ascii() {
        return Cow::Borrowed(trimmed);
    }
    let visible = |c: &char| c.general_category() != GeneralCategory::Format;
    if trimmed.chars().all(|c| visible(&c)) && is_nfc_quick(trimmed.chars()) == IsNormalized::Yes {
        return Cow::Borrowed(trimmed);
    }
    let composed: String = trimmed.chars().filter(visible).nfc().collect();
    // Removing a format character can leave whitespace at an end.
    match composed.trim() {
        t if t.len() == composed.len() => Cow::Owned(composed),
        t => Cow::Owned(t.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_looks_the_same_is_the_same_name() {
        for s in [
            "caf\u{e9}",
            "cafe\u{301}",
            "caf\u{e9}\u{200b}",
            "\u{feff}caf\u{e9}",
            " caf\u{e9}\u{a0}",
            "\u{2003}cafe\u{200d}\u{301}\u{3000}",
            "ca\u{ad}f\u{e9}",
            "\u{202e}caf\u{e9}\u{202c}",
        ] {
            assert_eq!(identity(s), "caf\u{e9}", "{s:?}");
        }
        assert_eq!(identity("  clientA\t"), "clientA");
        assert!(matches!(identity("clientA"), Cow::Borrowed(_)));
        assert!(matches!(identity("caf\u{e9}"), Cow::Borrowed(_)));
        // Only the ends are trimmed; what is between stays.
        assert_eq!(identity("a b\u{3000}c"), "a b\u{3000}c");
        // Nothing but invisible text is empty text.
        assert_eq!(identity("\u{200b}\u{feff} \u{2060}"), "");
    }

    #[test]
    fn the_form_is_stable() {
        for s in [
            "caf\u{e9}",
            "e\u{301}\u{200b}\u{301}",
            "\u{212b}",
            "Å\u{200c}",
            "한국어",
            "\u{1100}\u{1161}",
        ] {
            let once = identity(s).into_owned();
            assert_eq!(identity(&once), once, "{s:?}");
        }
        // Compatibility forms are not folded: NFC, not NFKC.
        assert_eq!(identity("\u{fb01}"), "\u{fb01}");
        assert_eq!(identity("\u{212b}"), "\u{c5}");
    }
}
