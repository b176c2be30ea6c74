//! Typed Dataset operations: `map_rows(f)`, `flat_map_rows(f)` and `filter_rows(f)` — Spark's
//! typed `Dataset[T].map` / `flatMap` / `filter`, as the seed writes them
//! (`lines.as[String].map(line => DeviceData(...))`).
//!
//! The function gets the whole current record: over the query's input, a borrowed view of
//! the row (`<Input as Record>::Ref<'_>`, every field as a column read gives it: `&str` for
//! `String`; nothing is allocated); after a `map_rows` / `flat_map_rows`, a reference to the
//! record that function returned. `map_rows` returns one record, `flat_map_rows` any
//! `IntoIterator` of records (an `Option` keeps or drops a row), `filter_rows` a `bool`.
//! Columns after a `map_rows` are the returned record's: the macro does not know that type,
//! so it binds each column the rest of the query names from the record (`BorrowRef`, the
//! value a column read would give) and rustc checks each name at the token that wrote it.
//!
//! Fused into the pipeline's row loop like the column operators: the function is an argument
//! of a generic call (`flowgate::dsl::call_row`), so a closure or fn item is inlined — no box,
//! no `dyn`. The function expression is evaluated once per row: write a closure or a path.
//! The input's source decodes every column (the function reads what it likes).

use std::fmt;

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Type};

use crate::compiler::ast::{Call, Query};
use crate::compiler::check::{single_arg, Cx};
use crate::compiler::diag::Diagnostics;
use crate::compiler::emit::{collect_units, fuse, watermark_unit};
use crate::compiler::logical::{LOp, Schema};
use crate::compiler::plan::{Pipeline, Plan};

/// Which typed operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TypedKind {
    /// `map_rows(f)`: one record per row.
    Map,
    /// `flat_map_rows(f)`: any number of records per row.
    FlatMap,
    /// `filter_rows(f)`: keep the row when `f` says so.
    Filter,
}

/// What the function is called on.
#[derive(Clone)]
pub enum RowFrom {
    /// The query input's row, as a `Record::Ref` view of this record type.
    Input(Box<Type>),
    /// The record typed operation `id` returned, by reference.
    Mapped(usize),
    /// An aggregation's emitted row, as a record of the type the function's argument names
    /// (`|r: &WordCount| ..`), built from the row's columns by name, by reference.
    Columns(Box<Type>, Vec<Ident>),
}

/// One typed operation.
#[derive(Clone)]
pub struct TypedSpec {
    /// Its number within the query (names the row variable).
    pub id: usize,
    pub kind: TypedKind,
    /// The user's function, as written.
    pub func: Expr,
    /// The operator's name token.
    pub name: Ident,
    pub from: RowFrom,
    /// For a map: the columns of its records that the rest of the query reads (bound per row
    /// from the record).
    pub columns: Vec<Ident>,
    /// For a map followed by a union: the other inputs' record types, which must be its
    /// records' (rustc checks it at each type).
    pub unioned: Vec<Type>,
}

impl TypedSpec {
    /// Whether its rows are new records (a map or a flat map), not the ones it got.
    pub fn produces(&self) -> bool {
        self.kind != TypedKind::Filter
    }

    /// Whether it reads the query input's rows whole (so the source decodes every column).
    pub fn reads_input(&self) -> bool {
        matches!(self.from, RowFrom::Input(_))
    }

    /// The columns its function's records are made of, when it runs over columns
    /// ([`RowFrom::Columns`]); none when it gets a whole record.
    pub fn column_reads(&self) -> &[Ident] {
        match &self.from {
            RowFrom::Columns(_, cols) => cols,
            _ => &[],
        }
    }
}

/// The variable holding the record typed operation `id` returned.
pub fn row_var(id: usize) -> Ident {
    format_ident!("__fg_row{}", id)
}

impl fmt::Display for TypedSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on = match &self.from {
            RowFrom::Input(ty) => format!("a borrowed view of each {} row", ty.to_token_stream()),
            RowFrom::Mapped(id) => format!("&record of typed #{id}"),
            RowFrom::Columns(ty, cols) => format!(
                "&{} built from [{}]",
                ty.to_token_stream(),
                cols.iter().map(Ident::to_string).collect::<Vec<_>>().join(", ")
            ),
        };
        write!(f, "typed #{} {}({}) on {on}", self.id, self.name, self.func.to_token_stream())?;
        if self.produces() {
            let cols: Vec<String> = self.columns.iter().map(Ident::to_string).collect();
            write!(f, ", binding [{}] from each record", cols.join(", "))?;
        }
        Ok(())
    }
}

/// Check hook: where a typed operation may stand (on a record: the input's, or the one a
/// previous map returned) and its one argument.
pub fn check(q: &Query, cx: &mut Cx, call: &Call, kind: TypedKind, diags: &mut Diagnostics) -> Option<LOp> {
    let name = call.name.to_string();
    let func = single_arg(call, diags)?;
    if let Expr::Closure(c) = func {
        if c.inputs.len() != 1 {
            diags.error(
                c.span(),
                format!("the function of `{name}` takes one argument, the row: `.{name}(|line| ...)`"),
            );
            return None;
        }
    }
    // After an aggregation, or a join and a `select`, the rows become records of the type
    // the function names.
    let columns_rows = !cx.group_state && (cx.aggregated || cx.stream_joined || !cx.joined.is_empty());
    let over_aggregation = match (&cx.schema, columns_rows) {
        (Schema::Closed { columns }, true) => match annotated_record(func) {
            Some(ty) => Some(RowFrom::Columns(Box::new(ty), columns.clone())),
            None => {
                let what = if cx.aggregated { "an aggregation" } else { "a join" };
                diags.error(
                    func.span(),
                    format!("`{name}` after {what} gets its rows as records of a type you name: write the function as a closure with its argument's type, `.{name}(|r: &WordCount| ...)` (a `#[derive(Record)]` struct with the columns as fields)"),
                );
                return None;
            }
        },
        _ => None,
    };
    if over_aggregation.is_none() && !check_on_a_record(cx, call, diags) {
        return None;
    }
    if kind != TypedKind::Filter {
        if let Some(w) = &cx.watermark {
            diags.error(
                call.name.span(),
                format!("`with_watermark({w}, ..)` before `{name}`: the function's records have no watermarked column (as in Spark, a typed map drops event-time metadata); put `with_watermark` after `{name}`, on a column of its records"),
            );
            return None;
        }
    }
    if over_aggregation.is_some() && kind != TypedKind::Filter {
        cx.records_from_columns = true;
    }
    let from = match (&cx.mapped, over_aggregation) {
        (_, Some(from)) => from,
        (Some((id, _)), None) => RowFrom::Mapped(*id),
        (None, None) => RowFrom::Input(Box::new(q.inputs.iter().find(|i| i.name == q.source)?.ty.clone())),
    };
    let id = cx.typed;
    cx.typed += 1;
    if kind != TypedKind::Filter {
        // The caller records it as `cx.mapped` once the previous map's columns are written.
        cx.schema = Schema::Open { defined: Vec::new() };
    }
    Some(LOp::TypedRows {
        spec: Box::new(TypedSpec {
            id,
            kind,
            func: func.clone(),
            name: call.name.clone(),
            from,
            columns: Vec::new(),
            unioned: Vec::new(),
        }),
    })
}

/// The record type a closure's argument names: `|r: &T| ..` (or `|r: T| ..`).
fn annotated_record(func: &Expr) -> Option<Type> {
    let Expr::Closure(c) = func else { return None };
    let syn::Pat::Type(pt) = c.inputs.first()? else { return None };
    match &*pt.ty {
        Type::Reference(r) => Some((*r.elem).clone()),
        other => Some(other.clone()),
    }
}

/// Rule: a typed operation's function gets the whole record, so the rows must be one: the
/// input's or a previous map's, after operators that only choose rows — not after a
/// `select`/`with_column`/`flat_map` (columns the record does not have), or a join; after an
/// aggregation only when the function names the record type (`RowFrom::Columns`).
fn check_on_a_record(cx: &Cx, call: &Call, diags: &mut Diagnostics) -> bool {
    let name = call.name.to_string();
    let why = if cx.records_from_columns {
        None
    } else if cx.aggregated || (cx.group_state && cx.mapped.is_none()) {
        Some("after an aggregation is not supported yet in flowgate: the aggregation's rows are not a record; map the input before aggregating, or `select` the result".to_string())
    } else if cx.stream_joined || !cx.joined.is_empty() {
        Some(format!("after a join gets a record of the columns a `select` names: `select` them, then name its type, `.{name}(|r: &OrderLine| ...)`; or map the stream before the join"))
    } else {
        match &cx.schema {
            Schema::Open { defined } if defined.is_empty() => None,
            Schema::Open { defined } => Some(format!(
                "gets the whole record, which has no column `{}` defined before it: compute it in the function, or put `{name}` first",
                defined[0]
            )),
            Schema::Closed { .. } => Some(format!(
                "gets the whole record, but `select` made the rows a list of columns: put `{name}` before the `select`, or make the record in the function"
            )),
        }
    };
    match why {
        Some(why) => {
            diags.error(call.name.span(), format!("`{name}` {why}"));
            false
        }
        None => true,
    }
}

/// A union after map `id`: the other input's record type must be the map's records' (checked
/// by rustc in the generated loop).
pub fn union_after(id: usize, ty: Type, ops: &mut [LOp]) {
    for op in ops.iter_mut() {
        if let LOp::TypedRows { spec } = op {
            if spec.id == id {
                spec.unioned.push(ty.clone());
            }
        }
    }
}

/// Writes the columns read after the last map (or group-state operator, whose records are
/// its function's) into it (at the next map or the end of check).
pub fn flush(cx: &mut Cx, ops: &mut [LOp]) {
    let Some((id, columns)) = cx.mapped.as_mut() else { return };
    let columns = std::mem::take(columns);
    for op in ops.iter_mut() {
        match op {
            LOp::TypedRows { spec } if spec.id == *id => spec.columns = columns.clone(),
            LOp::GroupState { spec } => match &mut spec.records {
                Some((records, cols)) if *records == *id => *cols = columns.clone(),
                _ => {}
            },
            _ => {}
        }
    }
}

/// The row the function is called on.
fn row(spec: &TypedSpec) -> TokenStream {
    match &spec.from {
        RowFrom::Input(ty) => quote!(<#ty as ::flowgate::Record>::row_ref(&__fg_cols, __fg_i)),
        RowFrom::Mapped(id) => {
            let v = row_var(*id);
            quote!(&#v)
        }
        // Each field spanned on the type: a column the record lacks, or a field no column
        // fills, is rustc's error there.
        RowFrom::Columns(ty, cols) => {
            let fields = cols.iter().map(|c| {
                let field = Ident::new(&c.to_string(), ty.span());
                quote_spanned!(ty.span()=> #field: ::flowgate::value::IntoOwned::into_owned(#c))
            });
            quote_spanned!(ty.span()=> &#ty { #(#fields),* })
        }
    }
}

/// Each of `columns` bound from record `var`, as a column read would give it (`BorrowRef`).
/// Each spanned on the token that named it: a column the record lacks is rustc's "no field"
/// error there.
pub(crate) fn record_binds(var: &Ident, columns: &[Ident]) -> TokenStream {
    let binds = columns.iter().map(|c| {
        let field = Ident::new(&c.to_string(), c.span());
        quote_spanned!(c.span()=> let #c = ::flowgate::record::BorrowRef::borrow_ref(&#var.#field);)
    });
    quote! { #(#binds)* }
}

/// Emit hook inside the row loop: the call, then `inner` for each row it makes (`reject`
/// leaves a row the filter drops).
pub fn emit_row(spec: &TypedSpec, inner: TokenStream, reject: &TokenStream) -> TokenStream {
    let f = &spec.func;
    let row = row(spec);
    let call = quote_spanned!(f.span()=> ::flowgate::dsl::call_row(#row, #f));
    let var = row_var(spec.id);
    let binds = record_binds(&var, &spec.columns);
    // A union after the map: its other inputs' rows are records of the same type.
    // Spanned on the other input's declared type: a record of another type is rustc's
    // "expected `Line`, found `DeviceData`" there.
    let same = spec.unioned.iter().map(|ty| {
        let v = Ident::new(&var.to_string(), ty.span());
        quote_spanned!(ty.span()=> let _: &#ty = &#v;)
    });
    match spec.kind {
        TypedKind::Filter => {
            let keep = quote_spanned!(f.span()=> let __fg_keep: bool = #call;);
            quote! { #keep if !__fg_keep { #reject } #inner }
        }
        TypedKind::Map => quote! { let #var = #call; #(#same)* #binds #inner },
        TypedKind::FlatMap => {
            // A `for` over the returned value: a function that returns no iterator is one
            // "is not an iterator" error, at the function.
            let rows = Ident::new(&format!("__fg_rows{}", spec.id), f.span());
            // An `Option` is the usual return: rows that parse or not.
            quote! {
                let #rows = #call;
                #[allow(for_loops_over_fallibles)]
                for #var in #rows { #(#same)* #binds #inner }
            }
        }
    }
}

/// An input pipeline whose output rows are the records its last map returned: each is pushed
/// into the output record's builder (rustc checks that the two types are one, at the map's
/// function).
pub fn emit_records(q: &Query, plan: &Plan, p: &Pipeline, input: usize, ends: &[TokenStream]) -> TokenStream {
    let out = &q.output;
    let Some(last) = p.ops.iter().rev().find_map(|op| match op {
        LOp::TypedRows { spec } if spec.produces() => Some(spec),
        _ => None,
    }) else {
        return quote! { compile_error!("flowgate bug: a records output without a map"); };
    };
    let units = collect_units(plan, p, input);
    // Spanned on the function: a record of another type than the output is rustc's "expected
    // `Out`, found `Record`" there.
    let var = Ident::new(&row_var(last.id).to_string(), last.func.span());
    let push = quote_spanned!(last.func.span()=> ::flowgate::RecordBuilder::push(&mut __fg_out, #var););
    let binds = crate::compiler::emit::bind_inputs(&p.reads);
    let (wm_start, wm_end) = watermark_unit(p);
    let body = fuse(plan, &p.ops, push);
    let grows = p.ops.iter().any(|op| {
        matches!(op, LOp::Filter { .. } | LOp::FlatMap { .. } | LOp::Dedup { .. } | LOp::Limit { global: Some(_), .. })
            || matches!(op, LOp::TypedRows { spec } if spec.kind != TypedKind::Map)
    });
    let capacity = if grows {
        quote!(::core::cmp::min(__fg_range.len(), ::flowgate::exec::FILTERED_START_CAPACITY))
    } else {
        quote!(__fg_range.len())
    };
    let builder = quote_spanned!(out.span()=> <#out as ::flowgate::Record>::builder(#capacity));
    let unit = quote! {
        let (__fg_cols, __fg_range) = __fg_unit;
        let mut __fg_out = #builder;
        #wm_start
        for __fg_i in __fg_range.clone() {
            #binds
            #body
        }
        #wm_end
        ::flowgate::RecordBuilder::finish(&mut __fg_out)
    };
    let run = if p.parallel {
        quote! { ::flowgate::exec::map_units(&__fg_units, |__fg_unit| { #unit }) }
    } else {
        quote! {
            let mut __fg_result = ::std::vec::Vec::with_capacity(__fg_units.len());
            for __fg_unit in &__fg_units {
                __fg_result.push({ #unit }?);
            }
            #(#ends)*
            ::core::result::Result::Ok(__fg_result)
        }
    };
    quote! { #units #run }
}
