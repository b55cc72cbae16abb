#![no_main]
//! What a user or a registry writes as text: image names (parsed names print back to a name
//! that parses to the same thing) and WWW-Authenticate challenges (never a panic).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(name) = text.parse::<strata::registry::ImageName>() {
        let again: strata::registry::ImageName = name
            .to_string()
            .parse()
            .expect("a parsed name prints as a name");
        assert_eq!(name, again);
        let _ = name.api_host();
        let _ = name.reference();
    }
    let _ = strata::registry::challenge::parse(text);
});
