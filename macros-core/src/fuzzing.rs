//! Fuzz checks of the `stream_query!` compiler on token streams (feature `fuzzing`): the
//! cargo-fuzz target `dsl_compiler` and the property tests in `tests/fuzz.rs` call
//! [`dsl_compiler`]. Every input is turned into a token stream (never skipped), in one of two
//! ways chosen by its first byte:
//!
//! - **a query from the grammar**: the bytes choose a valid query (stateless operators, then
//!   none, an aggregation, a windowed aggregation with a watermark or a dedup, in an output
//!   mode that allows it, then a projection), and maybe one mistake of a known kind (a
//!   misspelled duration, an unknown operator, an unknown column of a closed schema, complete
//!   mode without an aggregation, an aggregate outside `agg`). A valid query must compile with
//!   no error; a query with one mistake must get exactly one error, spanned on the mistake.
//! - **a token soup**: the bytes choose words, punctuation, literals and nested groups. Whatever
//!   the compiler says, it must not panic, its expansion must be Rust items, it must report an
//!   error exactly when its expansion holds one, and every error must be spanned on the input's
//!   tokens (never on the call site), unless the input is empty.

use std::ops::Range;

use proc_macro2::{Span, TokenStream, TokenTree};

/// Reads choices from the fuzzer's bytes (zeros once they run out).
struct Choices<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn below(&mut self, n: usize) -> usize {
        self.byte() as usize % n
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Checks the compiler on the token stream `data` describes (see the module docs); `Err`
/// says which property failed, on which query.
pub fn dsl_compiler(data: &[u8]) -> Result<(), String> {
    let Some((&first, rest)) = data.split_first() else { return soup(&[]) };
    if first % 2 == 0 {
        grammar(rest)
    } else {
        soup(rest)
    }
}

/// Where `span` is: its character range as proc-macro2's `span-locations` records it, read
/// from its `Debug` form (`bytes(lo..hi)`), the one form that survives a cargo-fuzz build
/// (under `cfg(fuzzing)` proc-macro2 keeps no source map: `byte_range` is always `0..0`, while
/// tokens still get their own `lo..hi`). The call site is `0..0`; the queries generated here
/// are ASCII, so characters are bytes.
fn range(span: Span) -> Range<usize> {
    let debug = format!("{span:?}");
    let inner = debug.strip_prefix("bytes(").and_then(|s| s.strip_suffix(')'));
    inner.and_then(|s| s.split_once("..")).and_then(|(lo, hi)| Some(lo.parse().ok()?..hi.parse().ok()?)).unwrap_or(0..0)
}

/// Every token's span in `tokens`, groups' delimiters included.
fn spans(tokens: &TokenStream, out: &mut Vec<Range<usize>>) {
    for t in tokens.clone() {
        match &t {
            TokenTree::Group(g) => {
                out.push(range(g.span_open()));
                out.push(range(g.span_close()));
                spans(&g.stream(), out);
            }
            _ => out.push(range(t.span())),
        }
    }
}

/// [`compile_checked`] for tests: the errors' messages and spans, or which property failed.
pub fn check_tokens(src: &str) -> Result<(Vec<String>, Vec<Range<usize>>), String> {
    let (errors, _) = compile_checked(src)?;
    Ok((errors.iter().map(ToString::to_string).collect(), errors.iter().map(|e| range(e.span())).collect()))
}

/// Whether `tokens` invoke `compile_error!` anywhere (a walk over the tokens: cheaper than
/// searching their text, which the fuzzer would otherwise format once per input).
fn has_compile_error(tokens: &TokenStream) -> bool {
    tokens.clone().into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == "compile_error",
        TokenTree::Group(g) => has_compile_error(&g.stream()),
        _ => false,
    })
}

/// The errors of one compilation and the properties every input must have: no panic, items
/// out, an error in the expansion exactly when there are errors, each spanned on the input.
fn compile_checked(src: &str) -> Result<(Vec<syn::Error>, TokenStream), String> {
    let tokens: TokenStream =
        src.parse().map_err(|e| format!("the generator wrote text that does not lex ({e}): {src}"))?;
    // One pass gives both the expansion and the errors it reports.
    let (out, errors) = std::panic::catch_unwind(|| crate::compile_reporting(tokens.clone()))
        .map_err(|_| format!("the compiler panicked on: {src}"))?;
    let expanded_error = has_compile_error(&out);
    syn::parse2::<syn::File>(out).map_err(|e| format!("the expansion is not Rust items ({e}) for: {src}"))?;
    let errors: Vec<syn::Error> = errors.into_iter().flat_map(|e| e.into_iter()).collect();
    if expanded_error == errors.is_empty() {
        return Err(format!(
            "{} errors reported, but the expansion {} a compile_error! for: {src}",
            errors.len(),
            if expanded_error { "has" } else { "has no" }
        ));
    }
    let mut input = Vec::new();
    spans(&tokens, &mut input);
    if let (Some(lo), Some(hi)) = (input.iter().map(|r| r.start).min(), input.iter().map(|r| r.end).max()) {
        for e in &errors {
            let r = range(e.span());
            if r.start < lo || r.end > hi || r.is_empty() {
                return Err(format!(
                    "error `{e}` is spanned at {r:?}, not on the input's tokens ({lo}..{hi}) for: {src}"
                ));
            }
        }
    }
    Ok((errors, tokens))
}

const SOUP_WORDS: &[&str] = &[
    "query",
    "pub",
    "Q",
    "Out",
    "lines",
    "events",
    "Line",
    "Event",
    "mode",
    "update",
    "append",
    "complete",
    "filter",
    "select",
    "with_column",
    "group_by",
    "agg",
    "window",
    "session_window",
    "with_watermark",
    "drop_duplicates",
    "drop_duplicates_within_watermark",
    "flat_map",
    "split",
    "union",
    "join",
    "order_by",
    "limit",
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "count_distinct",
    "as",
    "ts",
    "value",
    "key",
    "x",
    "static",
    "asc",
    "desc",
    "on",
    "left",
    "inner",
    "self",
    "match",
    "if",
    "else",
    "let",
    "move",
    "i64",
    "_",
    "r#type",
    "\"10 minutes\"",
    "\"5 seconds\"",
    "\"10 minuts\"",
    "\"0 seconds\"",
    "\"\"",
    "\" \"",
    "1",
    "0",
    "2.5",
    "-1",
    "'a'",
    "b\"x\"",
    "true",
    ".",
    ",",
    ":",
    ";",
    "=",
    "==",
    "->",
    "=>",
    ">",
    "<",
    "+",
    "*",
    "-",
    "/",
    "|",
    "&&",
    "!",
    "?",
    "::",
    "#",
    "$",
    "@",
    "'a",
    "..",
    "&",
];

/// A token soup: words, punctuation and literals, in groups nested as the bytes say.
fn soup(data: &[u8]) -> Result<(), String> {
    let mut c = Choices { data, pos: 0 };
    let mut src = String::new();
    let mut open: Vec<char> = Vec::new();
    while c.pos < data.len() {
        let b = c.byte() as usize;
        match b % 16 {
            0 if open.len() < 8 => {
                let (o, close) = c.pick(&[('(', ')'), ('[', ']'), ('{', '}')]);
                src.push(o);
                src.push(' ');
                open.push(close);
            }
            1 => {
                if let Some(close) = open.pop() {
                    src.push(close);
                    src.push(' ');
                }
            }
            _ => {
                src.push_str(SOUP_WORDS[(b / 16 + 16 * c.byte() as usize) % SOUP_WORDS.len()]);
                src.push(' ');
            }
        }
    }
    while let Some(close) = open.pop() {
        src.push(close);
    }
    compile_checked(&src).map(|_| ())
}

/// The kinds of mistake the grammar can put into a valid query.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mistake {
    /// `"10 minuts"` as a duration.
    Duration,
    /// `.frobnicate(value)`.
    UnknownOperator,
    /// `.select(nope)` after an aggregation.
    UnknownColumn,
    /// `mode = complete` without an aggregation.
    CompleteWithoutAggregation,
    /// `.filter(max(value) > 1)` before the aggregation.
    AggregateOutsideAgg,
}

/// The query text being generated, with the text range of the mistake's token.
struct Query {
    src: String,
    culprit: Option<Range<usize>>,
}

impl Query {
    fn push(&mut self, s: &str) {
        self.src.push_str(s);
    }
    /// Appends `before`, then `token` marked as the mistake, then `after`.
    fn culprit(&mut self, before: &str, token: &str, after: &str) {
        self.src.push_str(before);
        let start = self.src.len();
        self.src.push_str(token);
        self.culprit = Some(start..self.src.len());
        self.src.push_str(after);
    }
}

/// A query from the grammar, maybe with one mistake: no error when valid, exactly one on the
/// mistake otherwise.
fn grammar(data: &[u8]) -> Result<(), String> {
    let mut c = Choices { data, pos: 0 };
    // 0: stateless, 1: aggregation, 2: windowed aggregation with a watermark, 3: dedup with a
    // watermark, 4: dedup without.
    let stateful = c.below(5);
    let aggregates = matches!(stateful, 1 | 2);
    let mistakes: &[Mistake] = match stateful {
        0 | 4 => &[Mistake::UnknownOperator, Mistake::CompleteWithoutAggregation],
        1 => &[Mistake::UnknownOperator, Mistake::UnknownColumn, Mistake::AggregateOutsideAgg],
        2 => &[Mistake::UnknownOperator, Mistake::UnknownColumn, Mistake::AggregateOutsideAgg, Mistake::Duration],
        _ => &[Mistake::UnknownOperator, Mistake::CompleteWithoutAggregation, Mistake::Duration],
    };
    // About one query in three is valid.
    let mistake = match c.below(3 * mistakes.len() / 2 + 1) {
        i if i < mistakes.len() => Some(mistakes[i]),
        _ => None,
    };
    let modes: &[&str] = match stateful {
        0 | 3 | 4 => &["append", "update"],
        1 => &["update", "complete"],
        _ => &["append", "update", "complete"],
    };
    let mut q = Query { src: String::new(), culprit: None };
    if c.below(2) == 0 {
        q.push("pub ");
    }
    // Set below: the output record is the input's own after filters and dedups alone.
    q.push("query Q(events: Event) -> OUTPUT, mode = ");
    if mistake == Some(Mistake::CompleteWithoutAggregation) {
        q.culprit("", "complete", " {\n    events");
    } else {
        q.push(c.pick(modes));
        q.push(" {\n    events");
    }
    // Stateless operators; the columns they define.
    let mut defined: Vec<&str> = Vec::new();
    let stateless = c.below(4);
    let misplaced = if mistake == Some(Mistake::UnknownOperator) { c.below(stateless + 1) } else { usize::MAX };
    let outside_agg = if mistake == Some(Mistake::AggregateOutsideAgg) { c.below(stateless + 1) } else { usize::MAX };
    for i in 0..=stateless {
        if i == misplaced {
            q.culprit(".", "frobnicate", "(value)");
        }
        if i == outside_agg {
            q.culprit(".filter(", "max", "(value) > 1)");
        }
        if i == stateless {
            break;
        }
        let n = 1 + c.below(9);
        match c.below(3) {
            0 => q.push(&format!(".filter(value > {n})")),
            1 => {
                let name = ["x", "y", "z"][defined.len() % 3];
                if !defined.contains(&name) {
                    q.push(&format!(".with_column({name} = value * {n})"));
                    defined.push(name);
                }
            }
            _ => q.push(&format!(".filter(price < {n}.5)")),
        }
    }
    let duration = |c: &mut Choices<'_>| c.pick(&["\"10 minutes\"", "\"5 seconds\"", "\"1 hour\"", "\"2 days\""]);
    let watermark = |q: &mut Query, c: &mut Choices<'_>| {
        if mistake == Some(Mistake::Duration) {
            q.culprit(".with_watermark(ts, ", "\"10 minuts\"", ")");
        } else {
            q.push(&format!(".with_watermark(ts, {})", duration(c)));
        }
    };
    let mut outputs: Vec<&str> = Vec::new();
    match stateful {
        1 | 2 => {
            if stateful == 2 {
                watermark(&mut q, &mut c);
                q.push(&format!(".group_by(window(ts, {}), key)", duration(&mut c)));
                outputs.extend(["window", "key"]);
            } else if c.below(2) == 0 {
                q.push(".group_by(key)");
                outputs.push("key");
            } else {
                q.push(".group_by(key, value)");
                outputs.extend(["key", "value"]);
            }
            let all =
                [("count()", "n"), ("sum(value)", "s"), ("avg(price)", "a"), ("min(value)", "lo"), ("max(ts)", "hi")];
            let first = c.below(all.len());
            let k = 1 + c.below(3);
            let aggs: Vec<String> = (0..k)
                .map(|i| all[(first + i) % all.len()])
                .map(|(f, alias)| {
                    outputs.push(alias);
                    format!("{f} as {alias}")
                })
                .collect();
            q.push(&format!(".agg({})", aggs.join(", ")));
            if mistake == Some(Mistake::UnknownColumn) {
                q.culprit(".select(", "nope", ")");
            } else if c.below(2) == 0 {
                let keep: Vec<&str> = outputs.iter().copied().filter(|_| c.below(2) == 0).collect();
                if !keep.is_empty() {
                    q.push(&format!(".select({})", keep.join(", ")));
                }
            }
        }
        3 => {
            watermark(&mut q, &mut c);
            q.push(".drop_duplicates(key, ts)");
        }
        4 => q.push(".drop_duplicates(key)"),
        _ => {}
    }
    let output = if aggregates || !defined.is_empty() {
        if !aggregates {
            // Stateless with new columns: name the output's columns.
            let mut cols = vec!["value", "key"];
            cols.extend(&defined);
            q.push(&format!(".select({})", cols.join(", ")));
        }
        "Out   "
    } else {
        "Event "
    };
    // Same length as the placeholder: the culprit's offsets stay right.
    q.src = q.src.replacen("OUTPUT", output, 1);
    q.push("\n}\n");
    let (errors, tokens) = compile_checked(&q.src)?;
    let described = || errors.iter().map(|e| format!("`{e}` at {:?}", range(e.span()))).collect::<Vec<_>>().join("; ");
    match (mistake, &q.culprit) {
        (None, _) => {
            if !errors.is_empty() {
                return Err(format!("a valid query got errors ({}):\n{}", described(), q.src));
            }
        }
        (Some(m), Some(culprit)) => {
            if errors.len() != 1 {
                return Err(format!("one mistake ({m:?}) got {} errors ({}):\n{}", errors.len(), described(), q.src));
            }
            // The text's offsets in the source map: its first token, `pub` or `query`, starts it.
            let base = tokens.into_iter().next().map(|t| range(t.span()).start).unwrap_or(0);
            let want = base + culprit.start..base + culprit.end;
            let got = range(errors[0].span());
            if got.start >= want.end || got.end <= want.start {
                return Err(format!(
                    "the error for {m:?} (`{}`) is at {got:?}, not on the mistake {want:?} (`{}`):\n{}",
                    errors[0],
                    &q.src[culprit.clone()],
                    q.src
                ));
            }
        }
        (Some(m), None) => return Err(format!("internal: mistake {m:?} has no culprit")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_first_byte_and_a_spread_of_queries_hold() {
        // Every one-byte input, and queries from the grammar over a spread of second bytes.
        for a in 0..=255u8 {
            dsl_compiler(&[a]).unwrap();
            for b in (0..=255u8).step_by(29) {
                dsl_compiler(&[a & 0xfe, b, a, b.wrapping_mul(7), a ^ b]).unwrap();
            }
        }
    }

    #[test]
    fn a_query_that_ends_too_early_is_reported_on_its_last_token() {
        // Found by the soups: syn put "unexpected end of input" on the call site.
        let (errors, spans) = check_tokens("query Q(lines: Line) -> Line, mode").unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(!spans[0].is_empty(), "{spans:?}");
    }

    #[test]
    fn an_unknown_operator_gets_one_error_not_also_one_about_the_output_columns() {
        // Found by the grammar: `.frobnicate(value)` also drew "the output columns are not
        // known here" (the unknown operator might have been the projection).
        let src = "query Q(events: Event) -> Out, mode = append { events.frobnicate(value) }";
        let (errors, _) = check_tokens(src).unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("unknown operator `frobnicate`"), "{errors:?}");
    }
}
