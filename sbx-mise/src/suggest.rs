//! "Did you mean" suggestions for misspelt names.

/// The candidate closest to `input` by Jaro–Winkler similarity, if it is close enough to help.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(input, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    #[test]
    fn suggests_close_names_only() {
        assert_eq!(super::closest("netwrok_policy", ["network_policy", "agent"]), Some("network_policy"));
        assert_eq!(super::closest("zzz", ["network_policy", "agent"]), None);
    }
}
