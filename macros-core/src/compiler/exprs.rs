//! Reading user expressions: which identifiers are column references, and where aggregate
//! calls hide. Expressions are Rust; columns are the free lower-case identifiers in value
//! position (not functions being called, not names bound inside the expression, not
//! `UPPER_CASE` constants or paths with `::`).

use std::collections::HashSet;

use proc_macro2::Span;
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Expr, Ident, Pat, Token};

/// Aggregate function names, as written in `.agg(...)`.
pub const AGG_FUNCTIONS: &[&str] = &[
    "count",
    "sum",
    "avg",
    "mean",
    "min",
    "max",
    "first",
    "first_value",
    "last",
    "last_value",
    "collect_list",
    "collect_set",
    "approx_count_distinct",
    "stddev",
    "stddev_samp",
    "stddev_pop",
    "variance",
    "var_samp",
    "var_pop",
];

/// Aggregates Spark refuses on streams, with the message we give.
pub const UNSUPPORTED_AGGS: &[(&str, &str)] = &[
    ("count_distinct", "count(distinct) is not supported on streaming data (Spark: \"Distinct aggregations are not supported on streaming DataFrames/Datasets\"); use approx_count_distinct(x), Spark's HyperLogLog++ estimate"),
];

/// Free column references of `expr`, in order of first appearance (each name once).
pub fn free_columns(expr: &Expr) -> Vec<Ident> {
    let mut v = Collector::default();
    v.visit_expr(expr);
    let mut seen = HashSet::new();
    v.refs.into_iter().filter(|i| !v.bound.contains(&i.to_string())).filter(|i| seen.insert(i.to_string())).collect()
}

#[derive(Default)]
struct Collector {
    refs: Vec<Ident>,
    bound: HashSet<String>,
}

fn is_column_like(ident: &Ident) -> bool {
    let s = ident.to_string();
    let first = s.trim_start_matches("r#").chars().next().unwrap_or('A');
    (first.is_lowercase() || first == '_') && s != "self" && s != "crate" && s != "super"
}

impl Collector {
    fn bind_pat(&mut self, pat: &Pat) {
        struct Binder<'a>(&'a mut HashSet<String>);
        impl<'ast> Visit<'ast> for Binder<'_> {
            fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
                self.0.insert(p.ident.to_string());
                visit::visit_pat_ident(self, p);
            }
        }
        Binder(&mut self.bound).visit_pat(pat);
    }
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_expr_path(&mut self, p: &'ast syn::ExprPath) {
        if p.qself.is_none() {
            if let Some(ident) = p.path.get_ident() {
                if is_column_like(ident) {
                    self.refs.push(ident.clone());
                }
            }
        }
    }

    fn visit_expr_call(&mut self, c: &'ast syn::ExprCall) {
        // The callee is a function, not a column; a callee that is an expression is visited.
        if !matches!(&*c.func, Expr::Path(_)) {
            self.visit_expr(&c.func);
        }
        for a in &c.args {
            self.visit_expr(a);
        }
    }

    fn visit_pat(&mut self, p: &'ast Pat) {
        self.bind_pat(p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // `format!("{}", x)`, `vec![a, b]`: look at comma-separated expressions when they parse.
        if let Ok(args) = m.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
            for a in &args {
                self.visit_expr(a);
            }
        }
    }
}

/// An aggregate call (`count(...)`, `sum(x)`, …) anywhere in `expr`: name and span.
pub fn find_aggregate_call(expr: &Expr) -> Option<(String, Span)> {
    struct Finder(Option<(String, Span)>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_expr_call(&mut self, c: &'ast syn::ExprCall) {
            if self.0.is_none() {
                if let Expr::Path(p) = &*c.func {
                    if let Some(id) = p.path.get_ident() {
                        let name = id.to_string();
                        let is_agg =
                            AGG_FUNCTIONS.contains(&name.as_str()) || UNSUPPORTED_AGGS.iter().any(|(n, _)| *n == name);
                        // `min(a, b)` with two arguments is an ordinary function.
                        if is_agg && (c.args.len() <= 1 || !matches!(name.as_str(), "min" | "max")) {
                            self.0 = Some((name, id.span()));
                            return;
                        }
                    }
                }
            }
            visit::visit_expr_call(self, c);
        }
    }
    let mut f = Finder(None);
    f.visit_expr(expr);
    f.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(src: &str) -> Vec<String> {
        let e: Expr = syn::parse_str(src).unwrap();
        free_columns(&e).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn finds_columns_not_functions_or_bound_names() {
        assert_eq!(cols("split(value, \" \")"), ["value"]);
        assert_eq!(cols("a + b * a"), ["a", "b"]);
        assert_eq!(cols("name.map(|n| n.len() + LIMIT)"), ["name"]);
        assert_eq!(cols("std::cmp::max(x, 1)"), ["x"]);
        assert_eq!(cols("format!(\"{}-{}\", a, b)"), ["a", "b"]);
        assert_eq!(cols("match v { Some(k) => k, None => 0 }"), ["v"]);
        assert_eq!(cols("Point { x, y: z }"), ["x", "z"]);
    }

    #[test]
    fn finds_aggregates() {
        let e: Expr = syn::parse_str("count() + 1").unwrap();
        assert_eq!(find_aggregate_call(&e).unwrap().0, "count");
        let e: Expr = syn::parse_str("min(a, b)").unwrap();
        assert!(find_aggregate_call(&e).is_none());
    }
}
