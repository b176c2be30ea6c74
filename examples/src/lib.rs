//! Runnable flowgate examples live in `examples/`.
