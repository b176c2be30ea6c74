//! The compiler never panics: malformed queries — random token soups and valid queries with
//! tokens deleted, duplicated or replaced — always come back as spanned errors inside
//! well-formed Rust items (property tests with proptest).

use proc_macro2::TokenStream;
use proptest::prelude::*;

const VALID: &[&str] = &[
    r#"pub query WordCount(lines: Line) -> WordCount, mode = complete {
        lines.flat_map(word = split(value, " ")).group_by(word).agg(count() as count)
    }"#,
    r#"query W(events: Event) -> WindowCount, mode = append {
        events.with_watermark(ts, "10 minutes").group_by(window(ts, "10 minutes", "5 minutes"), word).agg(count() as count)
    }"#,
    r#"query S(clicks: Click) -> S, mode = append {
        clicks.with_watermark(ts, "10 minutes").group_by(session_window(ts, "5 minutes"), user).agg(count() as n, min(ts) as first)
    }"#,
    r#"query P(events: Event) -> Priced, mode = append {
        events.filter(qty.is_some_and(|q| q > 0)).with_column(x = qty).select(id, amount = price * 2.0, x)
    }"#,
];

const WORDS: &[&str] = &[
    "query",
    "Q",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "lines",
    ":",
    "Line",
    "->",
    "Out",
    ",",
    "mode",
    "=",
    "update",
    "append",
    "complete",
    ".",
    "filter",
    "select",
    "group_by",
    "agg",
    "window",
    "session_window",
    "\"10 minutes\"",
    "\"10 minuts\"",
    "\"0 seconds\"",
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "x",
    "as",
    "with_watermark",
    "flat_map",
    "split",
    ">",
    "1",
    "+",
    "|",
    "#",
    "pub",
    "ts",
    "\"\"",
    "-",
    "&&",
    "!",
    "::",
    "'a",
    "=>",
    "match",
    "if",
    "else",
    "let",
    ";",
    "i64",
];

/// Compiles `src` (if it tokenizes) and checks the compiler neither panicked nor produced
/// something that is not a sequence of Rust items.
fn check(src: &str) -> Result<(), TestCaseError> {
    let Ok(tokens) = src.parse::<TokenStream>() else { return Ok(()) };
    let out = std::panic::catch_unwind(|| flowgate_macros_core::compile(tokens));
    let out = out.map_err(|_| TestCaseError::fail(format!("the compiler panicked on: {src}")))?;
    syn::parse2::<syn::File>(out.clone())
        .map_err(|e| TestCaseError::fail(format!("output is not Rust items ({e}) for: {src}\n{out}")))?;
    Ok(())
}

fn tokens_of(src: &str) -> Vec<String> {
    src.parse::<TokenStream>()
        .map(|ts| ts.to_string().split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(words in proptest::collection::vec(0..WORDS.len(), 0..40)) {
        let src: Vec<&str> = words.iter().map(|&i| WORDS[i]).collect();
        check(&src.join(" "))?;
    }

    #[test]
    fn mutated_queries_never_panic(
        q in 0..VALID.len(),
        edits in proptest::collection::vec((0..3u8, 0..200usize, 0..WORDS.len()), 1..4),
    ) {
        let mut toks = tokens_of(VALID[q]);
        for (kind, at, word) in edits {
            if toks.is_empty() { break; }
            let at = at % toks.len();
            match kind {
                0 => { toks.remove(at); }
                1 => { let t = toks[at].clone(); toks.insert(at, t); }
                _ => toks[at] = WORDS[word].to_string(),
            }
        }
        check(&toks.join(" "))?;
    }
}

#[test]
fn valid_queries_compile_to_items() {
    for q in VALID {
        check(q).unwrap();
    }
}
