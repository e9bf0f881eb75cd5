//! Where the tests' Python SDK peers live: the repository's `.venv` (made by
//! `scripts/setup.sh`) and `tests/peers/python`. Shared by the test files that run real
//! Python MCP servers, so the path logic is written once.

use std::path::PathBuf;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The virtualenv's Python, with the MCP SDK installed.
pub fn python() -> String {
    let p = repo().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh",
        p.display()
    );
    p.to_string_lossy().into_owned()
}
