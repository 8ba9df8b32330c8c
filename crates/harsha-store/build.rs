//! Rebuilds the crate when a migration is added or changed: the embedded
//! migration sets are read at compile time.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
