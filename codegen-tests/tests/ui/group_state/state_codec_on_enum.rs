use flowgate::prelude::*;

#[derive(StateCodec)]
enum Phase {
    Idle,
    Active(i64),
}

fn main() {}
