//! Nothing to compile: this folder holds the recorded expectations, one folder
//! per environment, as `<environment>/<suite>/<case>.snap`. It is a package
//! because cargo-insta looks for pending snapshots (`.snap.new`) only inside
//! packages, and `cargo insta review` is how changed outcomes are accepted.
