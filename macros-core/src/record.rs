//! `#[derive(Record)]`: a struct with named fields becomes an Arrow schema with typed columns.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields};

/// Expands the derive; errors become `compile_error!` spanned on the offending token.
pub fn derive(input: TokenStream) -> TokenStream {
    match syn::parse2::<DeriveInput>(input).and_then(|d| expand(&d)) {
        Ok(ts) => ts,
        Err(e) => e.to_compile_error(),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "#[derive(Record)] needs a struct without generic parameters: a record is one Arrow schema",
        ));
    }
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => &named.named,
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "#[derive(Record)] needs named fields: each field is a column named after it",
                ))
            }
        },
        Data::Enum(e) => {
            return Err(syn::Error::new(e.enum_token.span, "#[derive(Record)] works on structs, not enums"))
        }
        Data::Union(u) => {
            return Err(syn::Error::new(u.union_token.span, "#[derive(Record)] works on structs, not unions"))
        }
    };
    if let Some(f) = fields.iter().find(|f| f.ident.as_ref().is_some_and(|i| i.to_string().starts_with("__fg_"))) {
        return Err(syn::Error::new(
            f.span(),
            "field names starting with `__fg_` are reserved for flowgate's generated code",
        ));
    }
    let name = &input.ident;
    let columns_ty = format_ident!("{}Columns", name);
    let builder_ty = format_ident!("{}Builder", name);
    let parts_ty = format_ident!("{}Parts", name);
    let ref_ty = format_ident!("{}Ref", name);
    let idents: Vec<_> = fields.iter().filter_map(|f| f.ident.clone()).collect();
    let names: Vec<String> = idents.iter().map(|i| i.to_string().trim_start_matches("r#").to_string()).collect();
    let tys: Vec<_> = fields.iter().map(|f| f.ty.clone()).collect();
    // Spanned on each field's type, so "the trait `ColumnType` is not implemented for `u8`"
    // points at the field that has the unsupported type.
    let col_tys: Vec<TokenStream> =
        tys.iter().map(|ty| quote_spanned!(ty.span()=> ::flowgate::record::Col<'a, #ty>)).collect();
    let builder_tys: Vec<TokenStream> =
        tys.iter().map(|ty| quote_spanned!(ty.span()=> <#ty as ::flowgate::ColumnType>::Builder)).collect();
    let doc_columns = format!("Typed columns of a batch of [`{name}`] rows.");
    let doc_builder = format!("Builds a batch of [`{name}`] rows column by column.");
    let doc_parts = format!("The output columns of a batch of [`{name}`] rows, one per field.");
    let doc_ref = format!("A borrowed view of one [`{name}`] row: each field as a column read gives it.");
    let ref_tys: Vec<TokenStream> =
        tys.iter().map(|ty| quote_spanned!(ty.span()=> <#ty as ::flowgate::ColumnType>::Ref<'a>)).collect();
    let part_tys: Vec<TokenStream> =
        tys.iter().map(|ty| quote_spanned!(ty.span()=> ::flowgate::record::OutColumn<#ty>)).collect();

    Ok(quote! {
        const _: () = {
            #[doc = #doc_columns]
            #[derive(Clone, Copy)]
            #[allow(non_camel_case_types, dead_code)]
            pub struct #columns_ty<'a> {
                #( pub #idents: #col_tys, )*
                __fg_rows: usize,
                __fg_lt: ::core::marker::PhantomData<&'a ()>,
            }

            #[doc = #doc_builder]
            #[allow(non_camel_case_types)]
            pub struct #builder_ty {
                #( #idents: #builder_tys, )*
                __fg_len: usize,
            }

            #[doc = #doc_parts]
            #[allow(non_camel_case_types)]
            pub struct #parts_ty {
                #( pub #idents: #part_tys, )*
            }

            #[doc = #doc_ref]
            #[derive(Clone, Copy)]
            #[allow(non_camel_case_types, dead_code)]
            pub struct #ref_ty<'a> {
                #( pub #idents: #ref_tys, )*
                __fg_lt: ::core::marker::PhantomData<&'a ()>,
            }

            impl ::flowgate::RecordBuilder<#name> for #builder_ty {
                #[inline(always)]
                fn push(&mut self, row: #name) {
                    #( <#tys as ::flowgate::ColumnType>::append(&mut self.#idents, row.#idents); )*
                    self.__fg_len += 1;
                }
                fn len(&self) -> usize {
                    self.__fg_len
                }
                fn finish(&mut self) -> ::flowgate::Result<::flowgate::__private::arrow_array::RecordBatch> {
                    self.__fg_len = 0;
                    let columns: ::std::vec::Vec<::flowgate::__private::arrow_array::ArrayRef> = ::std::vec![
                        #( <#tys as ::flowgate::ColumnType>::finish(&mut self.#idents), )*
                    ];
                    ::flowgate::record::batch_from_columns(<#name as ::flowgate::Record>::schema(), columns)
                }
            }

            impl ::flowgate::Record for #name {
                type Columns<'a> = #columns_ty<'a>;
                type Builder = #builder_ty;
                type Parts = #parts_ty;
                type Ref<'a> = #ref_ty<'a>;

                fn schema() -> ::flowgate::__private::arrow_schema::SchemaRef {
                    static SCHEMA: ::std::sync::OnceLock<::flowgate::__private::arrow_schema::SchemaRef> =
                        ::std::sync::OnceLock::new();
                    SCHEMA
                        .get_or_init(|| {
                            ::flowgate::record::schema_of(::std::vec![
                                #( <#tys as ::flowgate::ColumnType>::field(#names), )*
                            ])
                        })
                        .clone()
                }

                fn columns(
                    batch: &::flowgate::__private::arrow_array::RecordBatch,
                ) -> ::flowgate::Result<#columns_ty<'_>> {
                    ::core::result::Result::Ok(#columns_ty {
                        #( #idents: ::flowgate::record::Col::of(batch, #names)?, )*
                        __fg_rows: batch.num_rows(),
                        __fg_lt: ::core::marker::PhantomData,
                    })
                }

                fn builder(capacity: usize) -> #builder_ty {
                    #builder_ty {
                        #( #idents: <#tys as ::flowgate::ColumnType>::new_builder(capacity), )*
                        __fg_len: 0,
                    }
                }

                fn from_parts(
                    parts: #parts_ty,
                ) -> ::flowgate::Result<::flowgate::__private::arrow_array::RecordBatch> {
                    let columns: ::std::vec::Vec<::flowgate::__private::arrow_array::ArrayRef> = ::std::vec![
                        #( parts.#idents.finish(), )*
                    ];
                    ::flowgate::record::batch_from_columns(<#name as ::flowgate::Record>::schema(), columns)
                }

                #[inline]
                fn row(cols: &Self::Columns<'_>, i: usize) -> Self {
                    #name {
                        #( #idents: <#tys as ::flowgate::ColumnType>::from_ref(cols.#idents.get(i)), )*
                    }
                }

                #[inline(always)]
                fn row_ref<'a>(cols: &Self::Columns<'a>, i: usize) -> Self::Ref<'a> {
                    #ref_ty {
                        #( #idents: ::flowgate::record::Col::get(cols.#idents, i), )*
                        __fg_lt: ::core::marker::PhantomData,
                    }
                }

                #[inline]
                fn from_row_ref(r: #ref_ty<'_>) -> Self {
                    #name {
                        #( #idents: <#tys as ::flowgate::ColumnType>::from_ref(r.#idents), )*
                    }
                }

                fn from_batch(
                    batch: &::flowgate::__private::arrow_array::RecordBatch,
                ) -> ::flowgate::Result<::std::vec::Vec<Self>> {
                    let cols = <Self as ::flowgate::Record>::columns(batch)?;
                    let rows = batch.num_rows();
                    let mut out = ::std::vec::Vec::with_capacity(rows);
                    for i in 0..rows {
                        out.push(#name {
                            #( #idents: <#tys as ::flowgate::ColumnType>::from_ref(cols.#idents.get(i)), )*
                        });
                    }
                    ::core::result::Result::Ok(out)
                }
            }

        };
    })
}
