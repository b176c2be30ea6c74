//! The parsed query: what the user wrote, structurally, before any check.

use proc_macro2::Span;
use syn::{Attribute, Expr, Ident, Type, Visibility};

/// Everything inside one `stream_query! { ... }`.
pub struct QueryFile {
    pub queries: Vec<Query>,
}

/// `pub query Name(input: Record, ...) -> Output, mode = update { pipeline }`.
pub struct Query {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub inputs: Vec<Input>,
    pub output: Type,
    pub mode: Mode,
    /// The first identifier of the pipeline: the input it reads.
    pub source: Ident,
    pub calls: Vec<Call>,
    /// Errors the parser recovered from (a misspelled output mode): reported with the check
    /// phase's, and the query's items are still emitted so the rest of the program compiles.
    pub errors: Vec<syn::Error>,
}

/// A declared input.
pub struct Input {
    pub name: Ident,
    pub ty: Type,
    /// `name: static Record`: a bounded table read once, for stream-static joins.
    pub is_static: bool,
}

/// The declared output mode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ModeKind {
    Append,
    Update,
    Complete,
}

/// The output mode, with the span of its keyword.
#[derive(Clone, Copy)]
pub struct Mode {
    pub kind: ModeKind,
    pub span: Span,
}

/// One `.operator(args)` in the pipeline.
pub struct Call {
    pub name: Ident,
    pub args: Vec<Expr>,
}
