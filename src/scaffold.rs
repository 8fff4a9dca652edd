//! `ui-gateway new DIR`: a small site that runs at once (docs/getting-started.md "Start from a
//! scaffold"), so a first app starts from working code: a prototype with a method, a computed value,
//! a list shown through `lua.ViewList`, an input bound two-way, and an `html/` with a stylesheet.

use std::path::{Path, PathBuf};

/// The files of a new site: (path inside the site, content).
pub const FILES: &[(&str, &str)] = &[
    ("lua/main.lua", include_str!("scaffold/lua/main.lua")),
    ("viewdefs/App.DEFAULT.html", include_str!("scaffold/viewdefs/App.DEFAULT.html")),
    ("viewdefs/Item.list-item.html", include_str!("scaffold/viewdefs/Item.list-item.html")),
    ("html/index.html", include_str!("scaffold/html/index.html")),
    ("html/app.css", include_str!("scaffold/html/app.css")),
];

/// Why `new` made nothing.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// Never overwrite an author's files: the directory must be new or empty.
    #[error("{0} exists and is not empty; choose a new directory")]
    NotEmpty(PathBuf),
    #[error("{0} exists and is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Writes a new site into `dir` (created if missing, refused if it holds anything); returns the
/// files written.
pub fn create(dir: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(ScaffoldError::NotADirectory(dir.to_path_buf()));
        }
        let mut entries =
            std::fs::read_dir(dir).map_err(|source| ScaffoldError::Write { path: dir.to_path_buf(), source })?;
        if entries.next().is_some() {
            return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
        }
    }
    let mut written = Vec::new();
    for (rel, content) in FILES {
        let path = dir.join(rel);
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .map_err(|source| ScaffoldError::Write { path: parent.to_path_buf(), source })?;
        std::fs::write(&path, content).map_err(|source| ScaffoldError::Write { path: path.clone(), source })?;
        written.push(path);
    }
    Ok(written)
}

/// What `ui-gateway new` prints after writing the site: how to run it.
pub fn next_steps(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "Created a site in {d}:\n  {d}/lua/main.lua            the app (Lua, one copy per session)\n  \
{d}/viewdefs/*.html         how objects look (Type.namespace.html)\n  \
{d}/html/                   the page shell and app.css\n\nRun it, and edit it live:\n  \
ui-gateway {d} --watch\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("uigw-scaffold-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn writes_a_site_that_loads_and_never_overwrites() {
        let dir = temp("new");
        let files = create(&dir).unwrap();
        assert_eq!(files.len(), FILES.len());
        let site = crate::site::Site::load(&dir).expect("the scaffold is a valid site");
        assert!(site.main_lua.is_some());
        assert!(matches!(create(&dir), Err(ScaffoldError::NotEmpty(_))));
        let file = dir.join("lua/main.lua");
        assert!(matches!(create(&file), Err(ScaffoldError::NotADirectory(_))));
        // An empty directory is fine.
        let empty = temp("empty");
        std::fs::create_dir_all(&empty).unwrap();
        create(&empty).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&empty);
    }
}
