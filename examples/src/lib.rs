//! Runnable flowgate programs live in `examples/` (`cargo run --release --example NAME`);
//! this library holds what they share: a tiny argument parser.

/// The value after `--name` in the program's arguments, if given.
pub fn arg(name: &str) -> Option<String> {
    let flag = format!("--{name}");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == flag {
            return args.next();
        }
        if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
            return Some(v.to_string());
        }
    }
    None
}

/// `arg(name)` parsed, or `default`; a value that does not parse is an error naming the flag.
pub fn arg_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match arg(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("--{name}: cannot parse `{v}`")),
    }
}
