//! Phase 1, parse: tokens → [`QueryFile`]. Only structure is checked here (the shape of a
//! query header and of the method chain); names and rules are the check phase's.

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{braced, parenthesized, Attribute, Expr, Ident, Token, Type, Visibility};

use super::ast::{Call, Input, Mode, ModeKind, Query, QueryFile};

mod kw {
    syn::custom_keyword!(query);
    syn::custom_keyword!(mode);
}

/// Parses the macro input.
pub fn parse(input: TokenStream) -> syn::Result<QueryFile> {
    nesting::check(&input)?;
    let last = input.clone().into_iter().last().map(|t| match t {
        proc_macro2::TokenTree::Group(g) => g.span_close(),
        t => t.span(),
    });
    syn::parse2(input).map_err(|e| match last {
        Some(last) => respan_end_of_input(e, last),
        None => e,
    })
}

/// A bound on how deeply a query's expressions nest, checked on the tokens before syn parses
/// them: syn's expression parser, and the check and emit phases after it, recurse once per
/// nested group and per prefix or binary operator, so an input such as a thousand `-` in a row
/// overflowed a 2 MiB thread's stack in a debug build (found by the `dsl_compiler` fuzz target).
/// The bound is far beyond any query a person writes and far below what overflows.
pub mod nesting {
    use proc_macro2::{Delimiter, TokenStream, TokenTree};

    /// The deepest a query may nest: a group costs [`GROUP`], an operator [`OPERATOR`], summed
    /// along the way from the macro's input to any token.
    pub const LIMIT: usize = 256;
    /// What one level of `(..)`, `[..]` or `{..}` costs (syn's frames for a parenthesized
    /// expression are several times an operator's).
    pub const GROUP: usize = 8;
    /// What one punctuation token costs (so `&&` costs two: `!!!!x` is four nested negations,
    /// joined or not), but for `|`, which costs half a group (a closure `|a|` costs a group),
    /// and `<`, which costs one and a half (it may open a type); `,` and `;` end an expression
    /// and cost nothing, so long argument lists stay free.
    pub const OPERATOR: usize = 1;

    /// The keywords that cost as a group does (`as` costs as an operator).
    const KEYWORD_GROUPS: &[&str] = &[
        "return", "break", "yield", "become", "box", "let", "move", "if", "match", "while", "for", "loop", "unsafe",
        "async", "const", "static",
    ];

    /// `Err` on the first token where the query nests deeper than [`LIMIT`].
    pub fn check(input: &TokenStream) -> syn::Result<()> {
        walk(input, 0)
    }

    fn walk(stream: &TokenStream, outer: usize) -> syn::Result<()> {
        // The cost of the current comma-separated segment of this group.
        let mut segment = 0;
        let mut tokens = stream.clone().into_iter().peekable();
        // Whether the previous token was `else`: an `else if` chain nests one `if` in the
        // other, but syn's frames for it are an operator's, not a group's.
        let mut after_else = false;
        while let Some(t) = tokens.next() {
            let else_before = std::mem::take(&mut after_else);
            let cost = match &t {
                TokenTree::Group(g) => {
                    let inner = outer + segment + GROUP;
                    if g.delimiter() != Delimiter::None && inner > LIMIT {
                        return Err(too_deep(g.span_open()));
                    }
                    // A `None`-delimited group (from a macro's `$e`) is no level of its own.
                    let inner = if g.delimiter() == Delimiter::None { outer + segment } else { inner };
                    walk(&g.stream(), inner)?;
                    // A block ends what came before it (a query's header, a statement), unless
                    // an `else` goes on with it.
                    let goes_on = matches!(tokens.peek(), Some(TokenTree::Ident(i)) if i == "else");
                    if g.delimiter() == Delimiter::Brace && !goes_on {
                        segment = 0;
                    }
                    continue;
                }
                TokenTree::Punct(p) if matches!(p.as_char(), ',' | ';') => {
                    segment = 0;
                    continue;
                }
                // An attribute's `#` (each `///` line is one) nests nothing.
                TokenTree::Punct(p) if p.as_char() == '#' => continue,
                // A `|` may open a closure, whose body syn parses as a whole expression.
                TokenTree::Punct(p) if p.as_char() == '|' => GROUP / 2,
                // A `<` may open generic arguments or a qualified path, a type to syn, whose
                // frames are the largest (`A<A<..>>` and `&<&<..` were fuzz inputs).
                TokenTree::Punct(p) if p.as_char() == '<' => GROUP * 3 / 2,
                TokenTree::Punct(_) => OPERATOR,
                TokenTree::Ident(i) if i == "else" => {
                    after_else = true;
                    OPERATOR
                }
                TokenTree::Ident(i) if i == "as" || (i == "if" && else_before) => OPERATOR,
                // Keywords that nest a whole expression, as a group does: `return return ..`,
                // `if if ..` (a `dsl_compiler` fuzz input, in an attribute's value).
                TokenTree::Ident(i) if KEYWORD_GROUPS.iter().any(|k| i == k) => GROUP,
                _ => continue,
            };
            segment += cost;
            if outer + segment > LIMIT {
                return Err(too_deep(t.span()));
            }
        }
        Ok(())
    }

    fn too_deep(at: proc_macro2::Span) -> syn::Error {
        syn::Error::new(
            at,
            format!(
                "this query nests too deeply here: flowgate's compiler takes expressions of at most {LIMIT} \
                 nested operators (a group of brackets, a closure or a `||` counts as {GROUP}, a `<` as {}); split the expression with \
                 `with_column` steps or move it into a Rust function",
                GROUP * 3 / 2
            ),
        )
    }
}

/// syn reports a query that ends too early ("unexpected end of input") at the call site, the
/// whole macro invocation; such an error goes on the input's last token instead, where the
/// query stops (found by the `dsl_compiler` fuzz checks). Spans cannot be compared, but their
/// `Debug` forms can: the call site's is the invocation's, a token's its own.
fn respan_end_of_input(e: syn::Error, last: proc_macro2::Span) -> syn::Error {
    let call_site = format!("{:?}", proc_macro2::Span::call_site());
    let mut out: Option<syn::Error> = None;
    for err in e {
        let err = if format!("{:?}", err.span()) == call_site { syn::Error::new(last, err.to_string()) } else { err };
        match &mut out {
            None => out = Some(err),
            Some(o) => o.combine(err),
        }
    }
    out.unwrap_or_else(|| syn::Error::new(last, "malformed query"))
}

impl Parse for QueryFile {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut queries = Vec::new();
        while !input.is_empty() {
            queries.push(input.parse()?);
        }
        if queries.is_empty() {
            return Err(input.error(
                "expected a query: `query Name(input: Record) -> Output, mode = update { input.select(...) }`",
            ));
        }
        Ok(QueryFile { queries })
    }
}

impl Parse for Query {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        if !input.peek(kw::query) {
            return Err(input.error("expected `query`: `query Name(input: Record) -> Output, mode = update { ... }`"));
        }
        input.parse::<kw::query>()?;
        let name: Ident = input.parse()?;

        let content;
        parenthesized!(content in input);
        let mut inputs = Vec::new();
        for pair in Punctuated::<InputDecl, Token![,]>::parse_terminated(&content)? {
            inputs.push(Input { name: pair.name, ty: pair.ty, is_static: pair.is_static });
        }
        if inputs.is_empty() {
            return Err(syn::Error::new(
                name.span(),
                "a query needs at least one input: `query Name(events: Event) -> ...`",
            ));
        }

        input.parse::<Token![->]>()?;
        let output: Type = input.parse()?;
        input.parse::<Token![,]>().map_err(|e| {
            syn::Error::new(e.span(), "expected `, mode = append | update | complete` after the output type")
        })?;
        if !input.peek(kw::mode) {
            return Err(input.error("expected `mode = append | update | complete`"));
        }
        input.parse::<kw::mode>()?;
        input.parse::<Token![=]>()?;
        let mode_ident: Ident = input.parse()?;
        let mut errors = Vec::new();
        let kind = match mode_ident.to_string().as_str() {
            "append" => ModeKind::Append,
            "update" => ModeKind::Update,
            "complete" => ModeKind::Complete,
            other => {
                let hint = super::diag::did_you_mean(other, ["append", "update", "complete"])
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                errors.push(syn::Error::new(
                    mode_ident.span(),
                    format!("unknown output mode `{other}`: expected `append`, `update` or `complete`{hint}"),
                ));
                // Go on with the mode it most likely meant, so the query's items are still
                // emitted; the checks that depend on the mode stay silent (see `check`).
                match super::diag::did_you_mean(other, ["append", "update", "complete"]) {
                    Some("append") => ModeKind::Append,
                    Some("complete") => ModeKind::Complete,
                    _ => ModeKind::Update,
                }
            }
        };
        let mode = Mode { kind, span: mode_ident.span() };

        let body;
        braced!(body in input);
        let chain: Expr = body.parse()?;
        if !body.is_empty() {
            return Err(body.error("expected the end of the query: a query body is one method chain"));
        }
        let (source, calls) = unwind_chain(chain)?;
        Ok(Query { attrs, vis, name, inputs, output, mode, source, calls, errors })
    }
}

struct InputDecl {
    name: Ident,
    ty: Type,
    is_static: bool,
}

impl Parse for InputDecl {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let is_static = input.parse::<Option<Token![static]>>()?.is_some();
        let ty: Type = input.parse()?;
        Ok(InputDecl { name, ty, is_static })
    }
}

/// `a.f(x).g(y)` → (`a`, [f(x), g(y)]).
pub(crate) fn unwind_chain(mut expr: Expr) -> syn::Result<(Ident, Vec<Call>)> {
    let mut calls = Vec::new();
    loop {
        match expr {
            Expr::MethodCall(m) => {
                if let Some(tf) = &m.turbofish {
                    return Err(syn::Error::new(tf.span(), "query operators take no type arguments"));
                }
                calls.push(Call { name: m.method.clone(), args: m.args.into_iter().collect() });
                expr = *m.receiver;
            }
            Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                let source =
                    p.path.get_ident().cloned().ok_or_else(|| syn::Error::new(p.span(), "expected an input name"))?;
                calls.reverse();
                return Ok((source, calls));
            }
            Expr::Paren(p) => expr = *p.expr,
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "expected a pipeline: an input name followed by operators, e.g. `events.filter(x > 0).select(x)`",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn parses_a_query() {
        let f = parse(quote! {
            /// doc
            pub query WordCount(lines: Line) -> Out, mode = complete {
                lines.flat_map(word = split(value, " ")).group_by(word).agg(count() as count)
            }
        })
        .unwrap();
        let q = &f.queries[0];
        assert_eq!(q.name.to_string(), "WordCount");
        assert_eq!(q.source.to_string(), "lines");
        let names: Vec<String> = q.calls.iter().map(|c| c.name.to_string()).collect();
        assert_eq!(names, ["flat_map", "group_by", "agg"]);
        assert_eq!(q.mode.kind, ModeKind::Complete);
    }

    #[test]
    fn a_bad_mode_is_reported_and_the_query_kept() {
        let f = parse(quote! { query Q(a: A) -> B, mode = updat { a } }).unwrap();
        let e = &f.queries[0].errors[0];
        assert!(e.to_string().contains("did you mean `update`"), "{e}");
        assert_eq!(f.queries[0].mode.kind, ModeKind::Update);
    }
}
