//! `#[derive(StateCodec)]`: a struct becomes a checkpointable state value whose layout names
//! its fields (`struct[start:timestamp_us,events:i64]`), so the checkpoint records the state's
//! schema and a restart with an incompatible state type is refused, field by field.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Index};

/// Expands the derive; errors become `compile_error!` spanned on the offending token.
pub fn derive(input: TokenStream) -> TokenStream {
    match syn::parse2::<DeriveInput>(input).and_then(|d| expand(&d)) {
        Ok(ts) => ts,
        Err(e) => e.to_compile_error(),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let fields = match &input.data {
        Data::Struct(s) => &s.fields,
        Data::Enum(e) => {
            return Err(syn::Error::new(
                e.enum_token.span,
                "#[derive(StateCodec)] works on structs for now: keep an enum's variant as a field (a `String` or an integer) of a state struct",
            ))
        }
        Data::Union(u) => {
            return Err(syn::Error::new(u.union_token.span, "#[derive(StateCodec)] works on structs, not unions"))
        }
    };
    // Field names (tuple fields by position) and how each is reached.
    let (names, access, tys): (Vec<String>, Vec<TokenStream>, Vec<&syn::Type>) = match fields {
        Fields::Named(n) => n
            .named
            .iter()
            .map(|f| {
                let id = f.ident.as_ref().map(|i| i.to_string()).unwrap_or_default();
                let ident = &f.ident;
                (id.trim_start_matches("r#").to_string(), quote!(#ident), &f.ty)
            })
            .fold((Vec::new(), Vec::new(), Vec::new()), |mut acc, (a, b, c)| {
                acc.0.push(a);
                acc.1.push(b);
                acc.2.push(c);
                acc
            }),
        Fields::Unnamed(u) => u
            .unnamed
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let idx = Index::from(i);
                (format!("_{i}"), quote!(#idx), &f.ty)
            })
            .fold((Vec::new(), Vec::new(), Vec::new()), |mut acc, (a, b, c)| {
                acc.0.push(a);
                acc.1.push(b);
                acc.2.push(c);
                acc
            }),
        Fields::Unit => (Vec::new(), Vec::new(), Vec::new()),
    };
    // Spanned on each field's type: a field type without a codec is reported there.
    let layouts = tys.iter().map(|t| quote_spanned!(t.span()=> <#t as ::flowgate::codec::StateCodec>::layout));
    let encodes = access
        .iter()
        .zip(&tys)
        .map(|(a, t)| quote_spanned!(t.span()=> <#t as ::flowgate::codec::StateCodec>::encode(&self.#a, out);));
    let decodes = access
        .iter()
        .zip(&tys)
        .map(|(a, t)| quote_spanned!(t.span()=> #a: <#t as ::flowgate::codec::StateCodec>::decode(input)?,));
    Ok(quote! {
        impl #impl_generics ::flowgate::codec::StateCodec for #name #ty_generics #where_clause {
            fn layout(out: &mut ::std::string::String) {
                ::flowgate::codec::struct_layout(out, &[ #( (#names, #layouts as fn(&mut ::std::string::String)), )* ]);
            }
            fn encode(&self, out: &mut ::std::vec::Vec<u8>) {
                let _ = &out;
                #(#encodes)*
            }
            fn decode(input: &mut &[u8]) -> ::flowgate::Result<Self> {
                let _ = &input;
                ::core::result::Result::Ok(#name { #(#decodes)* })
            }
        }
    })
}
