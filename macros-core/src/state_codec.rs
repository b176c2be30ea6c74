//! `#[derive(StateCodec)]`: a struct becomes a checkpointable state value whose layout names
//! its fields (`struct[start:timestamp_us,events:i64]`), so the checkpoint records the state's
//! schema and a restart with an incompatible state type is refused, field by field. An enum's
//! layout names its variants in order, each with its fields
//! (`enum[Idle:struct[],Active:struct[since:timestamp_us]]`); its encoding is the variant's
//! index (one byte) and then the variant's fields.

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
        Data::Enum(e) => return expand_enum(input, e),
        Data::Union(u) => {
            return Err(syn::Error::new(u.union_token.span, "#[derive(StateCodec)] works on structs, not unions"))
        }
    };
    let (names, access, tys) = field_list(fields);
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

/// The most variants an enum state may have: the variant index is one byte.
const MAX_VARIANTS: usize = 256;

/// An enum: the variant's index (u8), then its fields; the layout names the variants.
fn expand_enum(input: &DeriveInput, e: &syn::DataEnum) -> syn::Result<TokenStream> {
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    if e.variants.is_empty() {
        return Err(syn::Error::new(
            name.span(),
            "#[derive(StateCodec)] needs an enum with a variant: an empty enum has no value to store",
        ));
    }
    if e.variants.len() > MAX_VARIANTS {
        return Err(syn::Error::new(
            name.span(),
            format!("#[derive(StateCodec)] stores an enum's variant in one byte: at most {MAX_VARIANTS} variants"),
        ));
    }
    let mut layouts = Vec::new();
    let mut encodes = Vec::new();
    let mut decodes = Vec::new();
    for (i, v) in e.variants.iter().enumerate() {
        let tag = i as u8;
        let vname = &v.ident;
        let vtext = vname.to_string().trim_start_matches("r#").to_string();
        let (names, access, tys) = field_list(&v.fields);
        let binds: Vec<syn::Ident> = (0..tys.len()).map(|j| quote::format_ident!("__fg_{}", j)).collect();
        let field_layouts =
            tys.iter().map(|t| quote_spanned!(t.span()=> <#t as ::flowgate::codec::StateCodec>::layout));
        layouts.push(quote! {
            (#vtext, &[ #( (#names, #field_layouts as fn(&mut ::std::string::String)), )* ])
        });
        let pattern = match &v.fields {
            Fields::Named(_) => quote!(#name::#vname { #( #access: #binds, )* }),
            Fields::Unnamed(_) => quote!(#name::#vname( #( #binds, )* )),
            Fields::Unit => quote!(#name::#vname),
        };
        let enc = binds
            .iter()
            .zip(&tys)
            .map(|(b, t)| quote_spanned!(t.span()=> <#t as ::flowgate::codec::StateCodec>::encode(#b, out);));
        encodes.push(quote! { #pattern => { out.push(#tag); #(#enc)* } });
        let dec = tys.iter().map(|t| quote_spanned!(t.span()=> <#t as ::flowgate::codec::StateCodec>::decode(input)?));
        let build = match &v.fields {
            Fields::Named(_) => quote!(#name::#vname { #( #access: #dec, )* }),
            Fields::Unnamed(_) => quote!(#name::#vname( #( #dec, )* )),
            Fields::Unit => quote!(#name::#vname),
        };
        decodes.push(quote! { #tag => #build, });
    }
    let type_name = name.to_string();
    Ok(quote! {
        impl #impl_generics ::flowgate::codec::StateCodec for #name #ty_generics #where_clause {
            fn layout(out: &mut ::std::string::String) {
                ::flowgate::codec::enum_layout(out, &[ #( #layouts, )* ]);
            }
            fn encode(&self, out: &mut ::std::vec::Vec<u8>) {
                match self {
                    #(#encodes)*
                }
            }
            fn decode(input: &mut &[u8]) -> ::flowgate::Result<Self> {
                let tag = ::flowgate::codec::enum_tag(input, #type_name)?;
                ::core::result::Result::Ok(match tag {
                    #(#decodes)*
                    other => return ::core::result::Result::Err(::flowgate::codec::bad_enum_tag(#type_name, other)),
                })
            }
        }
    })
}

/// A struct's or variant's fields: names (tuple fields by position, `_0`), how each is
/// reached (`self.<access>`, or the field in a pattern), and types.
fn field_list(fields: &Fields) -> (Vec<String>, Vec<TokenStream>, Vec<&syn::Type>) {
    match fields {
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
    }
}
