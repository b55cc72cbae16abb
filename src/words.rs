//! Counted nouns for messages: "1 layer", "2 layers", never "1 layers" or "1 blob(s)".

/// `n` and the noun that agrees with it: `one` for 1, else `many`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_noun_agrees_with_the_count() {
        assert_eq!(super::plural(0, "layer", "layers"), "0 layers");
        assert_eq!(super::plural(1, "layer", "layers"), "1 layer");
        assert_eq!(super::plural(2, "entry", "entries"), "2 entries");
    }
}
