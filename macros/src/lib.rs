//! The `stream_query!` compiler and `#[derive(Record)]` for flowgate.
//!
//! This file only hands tokens to the compiler; see `compiler/mod.rs` for its phases
//! (parse → check → plan → emit) and `ARCHITECTURE.md` at the workspace root.

use proc_macro::TokenStream;

mod compiler;
mod duration;
mod record;

/// Gives a plain struct an Arrow schema, typed columnar access and conversion to and from
/// `RecordBatch`. See `flowgate::Record`.
#[proc_macro_derive(Record)]
pub fn derive_record(input: TokenStream) -> TokenStream {
    record::derive(input.into()).into()
}

/// Compiles streaming queries. See the `flowgate` crate documentation for the language.
#[proc_macro]
pub fn stream_query(input: TokenStream) -> TokenStream {
    compiler::compile(input.into()).into()
}
