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
pub fn split<'a>(s: impl Into<Option<&'a str>>, sep: &'a str) -> Split<'a> {
    match (s.into(), sep.as_bytes()) {
        (None, _) => Split::Empty,
        // A one-byte separator (the common case: a space) splits on a `char`, which the
        // standard library searches with memchr; a `&str` pattern uses the two-way searcher.
        (Some(s), [b]) if b.is_ascii() => Split::Char(s.split(*b as char)),
        (Some(s), _) => Split::Str(s.split(sep)),
    }
}

/// The pieces [`split`] yields.
#[derive(Clone, Debug)]
pub enum Split<'a> {
    /// Split of a null string: nothing.
    Empty,
    /// Split on a one-byte separator.
    Char(std::str::Split<'a, char>),
    /// Split on a longer separator.
    Str(std::str::Split<'a, &'a str>),
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a str;
    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        match self {
            Split::Empty => None,
            Split::Char(s) => s.next(),
            Split::Str(s) => s.next(),
        }
    }
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

/// Spark's `window_time(window)`: the last instant of a time window, its end minus one
/// microsecond. After an aggregation by an event-time window it is that window's event time:
/// a later aggregation groups by `window(window_time(window), "1 hour")` (chained
/// aggregations, append mode).
///
/// ```
/// use flowgate::{functions::window_time, Timestamp, Window};
/// let w = Window::new(Timestamp::from_micros(0), Timestamp::from_micros(600_000_000));
/// assert_eq!(window_time(&w), Timestamp::from_micros(599_999_999));
/// ```
#[inline(always)]
pub fn window_time(window: &crate::Window) -> crate::Timestamp {
    crate::Timestamp(window.end.0 - 1)
}
