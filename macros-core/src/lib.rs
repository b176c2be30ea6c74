//! The `stream_query!` compiler and the `#[derive(Record)]` expansion as plain functions over
//! `proc_macro2` tokens, so tests and benchmarks can run them without rustc. The proc-macro
//! crate `flowgate-macros` only forwards to [`compile`] and [`derive_record`].

mod compiler;
pub use flowgate_interval as duration;
mod record;
mod state_codec;

pub use compiler::parse::nesting;
pub use compiler::{compile, compile_reporting};
#[cfg(feature = "fuzzing")]
pub mod fuzzing;

/// Expands `#[derive(Record)]` on the struct in `input`.
pub fn derive_record(input: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    record::derive(input)
}

/// Expands `#[derive(StateCodec)]` on the struct in `input`.
pub fn derive_state_codec(input: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    state_codec::derive(input)
}

/// The compiler's plan for each query in `input`, as text (what the snapshot tests record), or
/// the errors.
pub fn plan_text(input: proc_macro2::TokenStream) -> Result<String, String> {
    compiler::plan_text(input)
}
