//! The Rust backend examples stay small (a few dozen lines each): counted lines are the
//! non-blank lines of `main.rs` that are not comments; `site/` is not counted.

use std::path::Path;

/// Non-blank lines that are not `//` comments (doc comments included).
fn counted_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .count()
}

fn check(example: &str, limit: usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(example);
    let n = counted_lines(&dir.join("main.rs"));
    println!("examples/{example}/main.rs: {n} counted lines (limit {limit})");
    assert!(n <= limit, "examples/{example}/main.rs has {n} counted lines, the target is at most {limit}");
    assert!(dir.join("site/viewdefs").is_dir(), "examples/{example}/site/viewdefs is missing");
}

#[test]
fn counter_backend_is_at_most_60_lines() {
    check("counter_backend", 60);
}

#[test]
fn todo_backend_is_at_most_150_lines() {
    check("todo_backend", 150);
}
