//! placeholder
use proc_macro::TokenStream;
#[proc_macro_derive(Record)]
pub fn derive_record(_i: TokenStream) -> TokenStream { TokenStream::new() }
#[proc_macro]
pub fn stream_query(_i: TokenStream) -> TokenStream { TokenStream::new() }
