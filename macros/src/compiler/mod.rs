//! The `stream_query!` compiler: parse → check → plan → emit, each a function over plain data
//! (see ARCHITECTURE.md). Runs without rustc: the unit and snapshot tests call it directly.

pub mod ast;
pub mod check;
pub mod diag;
pub mod emit;
pub mod exprs;
pub mod logical;
pub mod ops;
pub mod parse;
pub mod plan;

use proc_macro2::TokenStream;

/// Compiles the macro input into Rust items (or spanned errors plus well-typed fallbacks).
pub fn compile(input: TokenStream) -> TokenStream {
    let file = match parse::parse(input) {
        Ok(f) => f,
        Err(e) => return e.to_compile_error(),
    };
    let mut out = TokenStream::new();
    for q in &file.queries {
        let mut diags = diag::Diagnostics::new();
        let logical = check::check(q, &mut diags);
        match diags.finish() {
            Ok(()) => {
                let physical = plan::plan(q, logical);
                out.extend(emit::emit(q, &physical));
            }
            Err(errors) => {
                out.extend(errors);
                out.extend(emit::emit_fallback(q));
            }
        }
    }
    out
}
