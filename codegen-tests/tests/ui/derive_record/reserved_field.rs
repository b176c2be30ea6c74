use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    __fg_len: i64,
}

fn main() {}
