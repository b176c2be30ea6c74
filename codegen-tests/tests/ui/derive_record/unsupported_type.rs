use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    small: u8,
}

fn main() {}
