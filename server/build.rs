//! Rebuild the server when the embedded web build or pages change (rust-embed includes files at
//! compile time in release builds, and cannot see files that did not exist before).
fn main() {
    println!("cargo:rerun-if-changed=../target/web");
    println!("cargo:rerun-if-changed=../target/web/recorder");
    println!("cargo:rerun-if-changed=../target/web/viewer");
    println!("cargo:rerun-if-changed=../target/web/viewer-static");
    println!("cargo:rerun-if-changed=../viewer/static");
    println!("cargo:rerun-if-changed=assets");
}
