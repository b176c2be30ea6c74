//! The `stream_query!` compiler and `#[derive(Record)]` for flowgate.
//!
//! This crate only hands tokens to the compiler in `flowgate-macros-core` (parse → check →
//! plan → emit); see `ARCHITECTURE.md` at the workspace root.

use proc_macro::TokenStream;

/// Gives a plain struct an Arrow schema, typed columnar access and conversion to and from
/// `RecordBatch`. See `flowgate::Record`.
#[proc_macro_derive(Record)]
pub fn derive_record(input: TokenStream) -> TokenStream {
    flowgate_macros_core::derive_record(input.into()).into()
}

/// Makes a struct a checkpointable state value (group-state functions' `S`): its layout names
/// its fields, so a restart with a changed state type is refused, saying which field changed.
/// See `flowgate::codec::StateCodec`.
#[proc_macro_derive(StateCodec)]
pub fn derive_state_codec(input: TokenStream) -> TokenStream {
    flowgate_macros_core::derive_state_codec(input.into()).into()
}

/// Compiles streaming queries. See the `flowgate` crate documentation for the language.
#[proc_macro]
pub fn stream_query(input: TokenStream) -> TokenStream {
    flowgate_macros_core::compile(input.into()).into()
}
