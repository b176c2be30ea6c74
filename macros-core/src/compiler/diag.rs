//! Diagnostics: errors are collected (not first-error-wins) and combined into one
//! `syn::Error`, each spanned on the DSL token that caused it.

use proc_macro2::{Span, TokenStream};

/// Collects errors. Must be consumed with [`Diagnostics::finish`]: dropping it with errors
/// inside is a bug in the compiler and panics in debug builds (as serde's `Ctxt`).
#[derive(Default)]
pub struct Diagnostics {
    errors: Option<Vec<syn::Error>>,
}

impl Diagnostics {
    pub fn new() -> Self {
        Diagnostics { errors: Some(Vec::new()) }
    }

    /// Records an error at `span`.
    pub fn error(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Records an error.
    pub fn push(&mut self, e: syn::Error) {
        if let Some(v) = self.errors.as_mut() {
            v.push(e);
        }
    }

    /// Number of errors so far (a rule whose premise an earlier error broke compares counts
    /// and stays silent, so one mistake gets one error).
    pub fn count(&self) -> usize {
        self.errors.as_ref().map_or(0, Vec::len)
    }

    /// The errors, one by one (the fuzz checks look at each one's span).
    pub fn into_errors(mut self) -> Vec<syn::Error> {
        self.errors.take().unwrap_or_default()
    }

    /// The combined errors as `compile_error!` invocations (empty when there were none).
    pub fn finish(mut self) -> Result<(), TokenStream> {
        let errors = self.errors.take().unwrap_or_default();
        let mut iter = errors.into_iter();
        match iter.next() {
            None => Ok(()),
            Some(mut first) => {
                for e in iter {
                    first.combine(e);
                }
                Err(first.to_compile_error())
            }
        }
    }
}

impl Drop for Diagnostics {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            debug_assert!(
                self.errors.as_ref().is_none_or(Vec::is_empty),
                "compiler bug: Diagnostics dropped without finish()"
            );
        }
    }
}

/// The closest candidate by edit distance, if close enough to be a plausible typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < word.len().max(1) + 1 && *d > 0)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// " (did you mean `x`?)" or nothing.
pub fn hint(word: &str, candidates: &[String]) -> String {
    did_you_mean(word, candidates.iter().map(String::as_str))
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("fliter", ["filter", "select"]), Some("filter"));
        assert_eq!(did_you_mean("wrod", ["word", "count"]), Some("word"));
        assert_eq!(did_you_mean("zzzzzz", ["word", "count"]), None);
    }
}
