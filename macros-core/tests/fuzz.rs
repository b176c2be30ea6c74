//! The compiler never panics: malformed queries — random token soups and valid queries with
//! tokens deleted, duplicated or replaced — always come back as errors spanned on their tokens
//! inside well-formed Rust items; valid queries get no error; and the grammar of
//! `flowgate_macros_core::fuzzing` checks that one mistake gets exactly one error, on it
//! (property tests with proptest; the same checks are the cargo-fuzz target `dsl_compiler`).

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

/// Compiles `src`, which must lex (the mutations keep delimiters balanced), and checks the
/// properties of `flowgate_macros_core::fuzzing`: no panic, Rust items out, errors exactly
/// when the expansion has one, each spanned on the input's tokens. Returns the errors.
fn check(src: &str) -> Result<Vec<String>, TestCaseError> {
    flowgate_macros_core::fuzzing::check_tokens(src).map(|(errors, _)| errors).map_err(TestCaseError::fail)
}

fn is_delimiter(t: &str) -> bool {
    matches!(t, "(" | ")" | "[" | "]" | "{" | "}")
}

/// The tokens of `src`, delimiters apart (a string literal stays one token).
fn tokens_of(src: &str) -> Vec<String> {
    fn walk(ts: TokenStream, out: &mut Vec<String>) {
        for t in ts {
            match t {
                proc_macro2::TokenTree::Group(g) => {
                    let (open, close) = match g.delimiter() {
                        proc_macro2::Delimiter::Parenthesis => ("(", ")"),
                        proc_macro2::Delimiter::Bracket => ("[", "]"),
                        proc_macro2::Delimiter::Brace => ("{", "}"),
                        proc_macro2::Delimiter::None => ("", ""),
                    };
                    out.push(open.to_string());
                    walk(g.stream(), out);
                    out.push(close.to_string());
                }
                t => out.push(t.to_string()),
            }
        }
    }
    let mut out = Vec::new();
    walk(src.parse().expect("a valid query lexes"), &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The fuzz target's checks on random bytes: queries from the grammar (valid: no error;
    /// one mistake: one error, on it) and token soups in balanced groups.
    #[test]
    fn fuzz_checks_hold_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        flowgate_macros_core::fuzzing::dsl_compiler(&bytes).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn token_soup_never_panics(words in proptest::collection::vec(0..WORDS.len(), 0..40)) {
        // Delimiters dropped: every soup is a token stream (none skipped).
        let src: Vec<&str> = words.iter().map(|&i| WORDS[i]).filter(|w| !is_delimiter(w)).collect();
        check(&src.join(" "))?;
    }

    #[test]
    fn mutated_queries_never_panic(
        q in 0..VALID.len(),
        edits in proptest::collection::vec((0..3u8, 0..200usize, 0..WORDS.len()), 1..4),
    ) {
        // Edits touch tokens, never delimiters, so the result still lexes.
        let mut toks = tokens_of(VALID[q]);
        for (kind, at, word) in edits {
            let leaves: Vec<usize> = (0..toks.len()).filter(|&i| !is_delimiter(&toks[i])).collect();
            if leaves.is_empty() { break; }
            let at = leaves[at % leaves.len()];
            match kind {
                0 => { toks.remove(at); }
                1 => { let t = toks[at].clone(); toks.insert(at, t); }
                _ if !is_delimiter(WORDS[word]) => toks[at] = WORDS[word].to_string(),
                _ => {}
            }
        }
        check(&toks.join(" "))?;
    }
}

#[test]
fn valid_queries_compile_with_no_error() {
    for q in VALID {
        assert_eq!(check(q).unwrap(), Vec::<String>::new(), "{q}");
    }
}

/// Every file of `fuzz/corpus/dsl_compiler/` (the cargo-fuzz target's corpus, with the inputs
/// of past findings).
fn corpus() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/dsl_compiler");
    let mut files: Vec<std::path::PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Runs `f` on a thread with the stack rustc gives a procedural macro (8 MiB, its main
/// thread's), where the macro runs. A debug build's frames are several times a release
/// build's (the fuzzer's), so deep inputs the nesting bound lets through (`&<& & &..>`, a
/// reference type inside a qualified path) need more than the test harness's 2 MiB.
fn on_rustcs_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new().stack_size(8 << 20).spawn(f).unwrap().join().unwrap();
}

#[test]
fn the_dsl_compiler_corpus_replays() {
    on_rustcs_stack(|| {
        for (i, data) in corpus().iter().enumerate() {
            if let Err(e) = flowgate_macros_core::fuzzing::dsl_compiler(data) {
                panic!("corpus file {i} ({data:?}): {e}");
            }
        }
    });
}

/// The target run briefly in CI without libFuzzer (see `runtime/src/fuzzing.rs`, `brief`):
/// mutations of the corpus from a fixed seed (`FLOWGATE_FUZZ_SEED` picks another).
#[test]
fn the_dsl_compiler_runs_briefly_on_its_mutated_corpus() {
    on_rustcs_stack(run_briefly);
}

fn run_briefly() {
    let files = corpus();
    let seed = std::env::var("FLOWGATE_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_u64);
    let mut rng = seed;
    let mut next = move || {
        rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as usize
    };
    for run in 0..2000 {
        let mut data = files[next() % files.len()].clone();
        for _ in 0..1 + next() % 4 {
            let at = if data.is_empty() { 0 } else { next() % data.len() };
            match next() % 4 {
                0 if !data.is_empty() => data[at] ^= 1 << (next() % 8),
                1 => data.insert(at, next() as u8),
                2 if !data.is_empty() => {
                    data.remove(at);
                }
                _ => data.truncate(at.max(1)),
            }
        }
        if let Err(e) = flowgate_macros_core::fuzzing::dsl_compiler(&data) {
            panic!("seed {seed}, run {run}, input {data:?}: {e}");
        }
    }
}

/// The deepest inputs the nesting bound lets through (`parse::nesting`) compile on this test
/// thread's 2 MiB stack in a debug build, and one step deeper gets one error, on the token
/// that crossed the bound. A thousand `-` in a row overflowed the stack before the bound (a
/// `dsl_compiler` fuzz input).
#[test]
fn inputs_at_the_nesting_bound_compile_and_deeper_ones_get_one_error() {
    use flowgate_macros_core::nesting::{GROUP, LIMIT};
    let query =
        |body: &str| format!("query Q(events: Event) -> Out, mode = append {{ events.filter({body}).select(x) }}");
    // The filter's argument starts at depth 1 (`->`) + 1 (`=`) + 2 groups + 1 (`.`).
    let start = 2 + 2 * GROUP + 1;
    let room = LIMIT - start;
    type Shape = Box<dyn Fn(usize) -> String>;
    let shapes: Vec<(&str, Shape)> = vec![
        ("negations", Box::new(|n| format!("{}x", "- ".repeat(n)))),
        ("a sum", Box::new(|n| format!("x{}", " + x".repeat(n)))),
        ("parentheses", Box::new(|n| format!("{}x{}", "(".repeat(n / GROUP), ")".repeat(n / GROUP)))),
        ("casts", Box::new(|n| format!("x{}", " as i64".repeat(n)))),
        ("returns", Box::new(|n| format!("{}x", "return ".repeat(n / GROUP)))),
        // The blocks come after all the `if`s, so they cost a group more than the `if`s.
        ("ifs", Box::new(|n| format!("{}x{}", "if ".repeat(n / GROUP - 1), " {}".repeat(n / GROUP - 1)))),
        ("field accesses", Box::new(|n| format!("x{}", ".f".repeat(n)))),
        ("closures", Box::new(|n| format!("{}x", "|a| ".repeat(n / GROUP)))),
        ("blocks", Box::new(|n| format!("{}x{}", "{".repeat(n / GROUP), "}".repeat(n / GROUP)))),
        ("arrays", Box::new(|n| format!("{}x{}", "[".repeat(n / GROUP), "]".repeat(n / GROUP)))),
        ("negated groups", Box::new(|n| format!("{}x{}", "!(".repeat(n / (GROUP + 1)), ")".repeat(n / (GROUP + 1))))),
        (
            "if blocks",
            Box::new(|n| format!("{}x{}", "if x {".repeat(n / (2 * GROUP)), "} else { x }".repeat(n / (2 * GROUP)))),
        ),
        ("generic arguments", Box::new(|n| format!("y as {}i64{}", "A<".repeat(n / 13), ">".repeat(n / 13)))),
        ("references to qualified paths", Box::new(|n| format!("{}x", "& <".repeat(n / 13)))),
        ("alternatives", Box::new(|n| format!("x{}", " || x".repeat(n / GROUP)))),
    ];
    for (what, body) in &shapes {
        let fits = room - room % GROUP;
        let errors = flowgate_macros_core::fuzzing::check_tokens(&query(&body(fits))).unwrap().0;
        assert!(errors.iter().all(|e| !e.contains("nests too deeply")), "{what} at the bound: {errors:?}");
        let deeper = flowgate_macros_core::fuzzing::check_tokens(&query(&body(fits + 4 * GROUP))).unwrap().0;
        assert_eq!(deeper.len(), 1, "{what} past the bound: {deeper:?}");
        assert!(deeper[0].starts_with("this query nests too deeply here"), "{what}: {deeper:?}");
    }
    // The shapes the fuzzer found: a thousand `-`, and `if if if ..` in an attribute's value.
    for body in [format!("{}x", "- ".repeat(1000)), format!("x{}", " as i64".repeat(1000))] {
        let thousand = flowgate_macros_core::fuzzing::check_tokens(&query(&body)).unwrap().0;
        assert_eq!(thousand.len(), 1, "{thousand:?}");
    }
    // Doc comments are attributes, one per line: a long one nests nothing.
    let documented = format!(
        "{}query Q(events: Event) -> Out, mode = append {{ events.select(x) }}",
        "/// A line of docs.\n".repeat(400)
    );
    let errors = flowgate_macros_core::fuzzing::check_tokens(&documented).unwrap().0;
    assert!(errors.iter().all(|e| !e.contains("nests too deeply")), "{errors:?}");
    let attribute =
        format!("#[append = {}x] query Q(events: Event) -> Out, mode = append {{ events }}", "if ".repeat(1000));
    let errors = flowgate_macros_core::fuzzing::check_tokens(&attribute).unwrap().0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    // An `else if` chain is a chain of nested `if`s to syn, bounded as operators are: 100
    // branches compile, a thousand get one error.
    for (n, errors) in [(100, 0), (1000, 1)] {
        let chain = query(&format!("if x {{ x }}{} else {{ x }}", " else if x { x }".repeat(n)));
        let got = flowgate_macros_core::fuzzing::check_tokens(&chain).unwrap().0;
        assert_eq!(got.iter().filter(|e| e.contains("nests too deeply")).count(), errors, "{n}: {got:?}");
    }
}
