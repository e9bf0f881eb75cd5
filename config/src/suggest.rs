//! "Did you mean" for misspelt keys and names: the candidate closest to what was written, if
//! any is close enough to be a likely typo rather than a different word.

/// The candidate nearest to `word`, if it is plausibly a typo of it.
pub(crate) fn nearest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, c)| {
            *score > 0.8 || (word.len() >= 3 && strsim::osa_distance(word, c) <= 1)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `; did you mean "x"?`, or `; expected one of: a, b` when nothing is close, or an empty
/// string when there are no candidates.
pub(crate) fn hint(word: &str, candidates: &[&str]) -> String {
    match nearest(word, candidates) {
        Some(c) => format!("; did you mean {c:?}?"),
        None if candidates.is_empty() => String::new(),
        None => format!("; expected one of: {}", candidates.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_suggest_the_intended_word_and_strangers_suggest_nothing() {
        let keys = ["listen", "admin_listen", "threads"];
        assert_eq!(nearest("listn", &keys), Some("listen"));
        assert_eq!(nearest("admin-listen", &keys), Some("admin_listen"));
        assert_eq!(nearest("threds", &keys), Some("threads"));
        assert_eq!(nearest("ttl", &["tll", "secret"]), Some("tll"));
        assert_eq!(nearest("banana", &keys), None);
        assert_eq!(nearest("x", &[]), None);
    }

    #[test]
    fn hint_lists_the_candidates_when_none_is_close() {
        assert_eq!(hint("zzz", &["a", "b"]), "; expected one of: a, b");
        assert_eq!(hint("zzz", &[]), "");
    }
}
