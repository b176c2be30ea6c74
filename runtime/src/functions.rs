//! Spark-style functions for query expressions. Column values are plain Rust values
//! (`&str`, `i64`, `Option<&str>` for nullable columns), so most of Spark's functions are
//! simply Rust methods; these cover the ones with SQL null semantics.

/// Spark's `split(str, sep)` for `explode`: the pieces of `s` between occurrences of `sep`
/// (a literal separator, not a regex). A null string gives no pieces, so
/// `.flat_map(word = split(value, " "))` drops null lines as Spark's `explode` does; the empty
/// string gives one empty piece, as in Spark.
///
/// ```
/// use flowgate::functions::split;
/// assert_eq!(split("a b", " ").collect::<Vec<_>>(), ["a", "b"]);
/// assert_eq!(split(None, " ").count(), 0);
/// assert_eq!(split("", " ").collect::<Vec<_>>(), [""]);
/// ```
#[inline]
pub fn split<'a>(
    s: impl Into<Option<&'a str>>,
    sep: &'a str,
) -> std::iter::Flatten<std::option::IntoIter<std::str::Split<'a, &'a str>>> {
    s.into().map(|s| s.split(sep)).into_iter().flatten()
}

/// Spark's `lower`: null stays null.
///
/// ```
/// use flowgate::functions::lower;
/// assert_eq!(lower(Some("AbC")), Some("abc".to_string()));
/// ```
pub fn lower<'a>(s: impl Into<Option<&'a str>>) -> Option<String> {
    s.into().map(str::to_lowercase)
}

/// Spark's `upper`: null stays null.
pub fn upper<'a>(s: impl Into<Option<&'a str>>) -> Option<String> {
    s.into().map(str::to_uppercase)
}

/// Spark's `length` (characters): null stays null.
pub fn length<'a>(s: impl Into<Option<&'a str>>) -> Option<i32> {
    s.into().map(|s| s.chars().count() as i32)
}

/// Spark's `coalesce` for two values: the first that is not null.
pub fn coalesce<T>(a: Option<T>, b: T) -> T {
    a.unwrap_or(b)
}
