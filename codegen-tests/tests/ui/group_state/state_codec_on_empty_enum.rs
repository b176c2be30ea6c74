use flowgate::prelude::*;

#[derive(StateCodec)]
enum Never {}

fn main() {}
