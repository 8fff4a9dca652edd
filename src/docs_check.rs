//! Keeps the repository self-explaining: every section reference and every document a comment,
//! doc page, `--help` text, example or vector cites must be a file in the repository, and every relative
//! link of the user-facing markdown must resolve. The product spec the code was first written from is
//! not shipped, so a citation of it is a dead end for anyone reading a clone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The spec documents that are not in the repository. Spelled in two halves so that this file does not
/// cite them itself.
const OUTSIDE_DOCS: [(&str, &str); 4] =
    [("operations", ".md"), ("lua-and-tracking", ".md"), ("frontend", ".md"), ("backend-protocol", ".md")];

const SECTION: char = '\u{a7}';

/// Standards outside the project that may be cited by section: RFCs and the Lua reference manual.
const EXTERNAL_STANDARDS: [&str; 2] = ["RFC ", "reference manual"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every UTF-8 file of the repository, relative to its root, except build output and git's own.
fn text_files() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).expect("readable directory").flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let name = entry.file_name();
            let file_type = entry.file_type().expect("file type");
            if file_type.is_dir() {
                if name != "target" && name != ".git" {
                    walk(&path, root, out);
                }
            } else if file_type.is_file() {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    out.push((path.strip_prefix(root).expect("under the root").to_path_buf(), text));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), &root(), &mut out);
    out
}

/// Every markdown file name of the repository (`README.md`, `PROTOCOL.md`, …) with its path, and the
/// bare names (`BENCHMARKS`) that prose uses for them.
struct Documents {
    paths: Vec<String>,
}

impl Documents {
    fn new(files: &[(PathBuf, String)]) -> Self {
        let paths =
            files.iter().map(|(p, _)| p.to_string_lossy().replace('\\', "/")).filter(|p| p.ends_with(".md")).collect();
        Documents { paths }
    }

    /// Whether `name` (`PROTOCOL.md`, `vectors/README.md`, `BENCHMARKS`) names a document in the
    /// repository.
    fn contains(&self, name: &str) -> bool {
        let name = name.trim_matches(|c: char| c == '`' || c == '[' || c == ']' || c == '(' || c == '"');
        let with_ext = if name.ends_with(".md") { name.to_string() } else { format!("{name}.md") };
        self.paths.iter().any(|p| p == &with_ext || p.ends_with(&format!("/{with_ext}")))
    }
}

/// The numbers of a markdown file's own numbered headings (`## 3. Idle WebSocket memory` → `3`,
/// `### 8b. …` → `8b`), which its prose may cite by number alone.
fn own_sections(path: &Path, text: &str) -> BTreeSet<String> {
    if path.extension().is_none_or(|e| e != "md") {
        return BTreeSet::new();
    }
    text.lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| l.trim_start_matches('#').trim_start())
        .filter_map(|l| l.split(['.', ' ']).next())
        .filter(|n| n.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_string)
        .collect()
}

/// Why the section sign at byte `at` of `line` does not point into the repository, if it does not.
fn bad_section_reference(line: &str, at: usize, docs: &Documents, own: &BTreeSet<String>) -> Option<String> {
    let number: String =
        line[at + SECTION.len_utf8()..].trim_start().chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    let before = &line[..at];
    if EXTERNAL_STANDARDS.iter().any(|s| before.rfind(s).is_some_and(|i| before.len() - i < 24)) {
        return None;
    }
    // The nearest preceding word, skipping a list of other sections (`BENCHMARKS §6, §8b`).
    let mut rest = before.trim_end();
    loop {
        let word_start = rest.rfind(|c: char| c.is_whitespace()).map_or(0, |i| i + 1);
        let word = &rest[word_start..];
        let is_section = word.starts_with(SECTION) || word.trim_end_matches(',').chars().all(|c| c == SECTION);
        if is_section && word_start > 0 {
            rest = rest[..word_start].trim_end();
            continue;
        }
        if docs.contains(word.trim_end_matches([',', ':'])) {
            return None;
        }
        break;
    }
    if own.contains(&number) {
        return None;
    }
    Some(format!("{SECTION}{number} does not follow the name of a document in the repository"))
}

/// Every citation of a document outside the repository, and every section sign that does not follow the name of
/// one inside it, as `path:line: reason`.
fn dangling_references() -> Vec<String> {
    let files = text_files();
    let docs = Documents::new(&files);
    let outside: Vec<String> = OUTSIDE_DOCS.iter().map(|(a, b)| format!("{a}{b}")).collect();
    let mut found = Vec::new();
    for (path, text) in &files {
        let own = own_sections(path, text);
        for (n, line) in text.lines().enumerate() {
            let place = format!("{}:{}", path.display(), n + 1);
            for doc in &outside {
                if line.contains(doc.as_str()) {
                    found.push(format!("{place}: cites {doc}, which is not in the repository"));
                }
            }
            for (at, _) in line.match_indices(SECTION) {
                if let Some(why) = bad_section_reference(line, at, &docs, &own) {
                    found.push(format!("{place}: {why}"));
                }
            }
        }
    }
    found
}

/// The relative link targets of a markdown text: `[text](target)` and `[label]: target`, without
/// `#fragments`; web, mail and in-page links are skipped.
fn relative_links(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_code_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code_block = !in_code_block;
        }
        if in_code_block {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let end = after.find(')').unwrap_or(after.len());
            targets.push(after[..end].split_whitespace().next().unwrap_or("").to_string());
            rest = &after[end..];
        }
        if let Some(after) = line.trim_start().strip_prefix('[').and_then(|l| l.split_once("]: ")) {
            targets.push(after.1.trim().to_string());
        }
    }
    targets
        .into_iter()
        .map(|t| t.split('#').next().unwrap_or("").to_string())
        .filter(|t| !t.is_empty() && !t.contains("://") && !t.starts_with("mailto:"))
        .collect()
}

/// The user-facing markdown whose links must resolve.
fn linked_documents() -> Vec<PathBuf> {
    let root = root();
    let mut docs: Vec<PathBuf> = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    for (path, _) in text_files() {
        let top = path.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned());
        if path.extension().is_some_and(|e| e == "md") && matches!(top.as_deref(), Some("docs" | "protocol")) {
            docs.push(root.join(path));
        }
    }
    docs
}

#[test]
fn spec_references_point_into_the_repository() {
    let found = dangling_references();
    assert!(found.is_empty(), "{} references point outside the repository:\n{}", found.len(), found.join("\n"));
}

#[test]
fn relative_markdown_links_resolve() {
    let mut broken = Vec::new();
    for doc in linked_documents() {
        let text = std::fs::read_to_string(&doc).expect("readable document");
        let dir = doc.parent().expect("a directory");
        for target in relative_links(&text) {
            if !dir.join(&target).exists() {
                broken.push(format!("{}: {target}", doc.strip_prefix(root()).unwrap_or(&doc).display()));
            }
        }
    }
    assert!(linked_documents().len() > 10, "the docs pages are found");
    assert!(broken.is_empty(), "links to missing files:\n{}", broken.join("\n"));
}

#[test]
fn the_reference_check_tells_good_citations_from_bad() {
    let files = vec![
        (PathBuf::from("BENCHMARKS.md"), String::new()),
        (PathBuf::from("protocol/vectors/README.md"), String::new()),
    ];
    let docs = Documents::new(&files);
    let own: BTreeSet<String> = ["3".to_string()].into();
    let check = |line: &str| {
        line.match_indices(SECTION).filter_map(|(at, _)| bad_section_reference(line, at, &docs, &own)).count()
    };
    assert_eq!(check("see BENCHMARKS \u{a7}6, \u{a7}8b for the numbers"), 0);
    assert_eq!(check("format: `protocol/vectors/README.md` \u{a7}2.4"), 0);
    assert_eq!(check("vectors README \u{a7}1.4: limits"), 0);
    assert_eq!(check("close code (RFC 6455 \u{a7}7.4.1)"), 0);
    assert_eq!(check("as measured in \u{a7}3"), 0, "a markdown file's own numbered section");
    assert_eq!(check("(browser protocol \u{a7}12)"), 1);
    assert_eq!(check("the \u{a7}16 fixture"), 1);
    assert_eq!(check("(\u{a7}4.2) and (\u{a7}4.3)"), 2);
    assert_eq!(
        relative_links("[a](docs/x.md#y) [b](https://e.org) [c](#here)\n```\n[d](no.md)\n```\n[e]: ../f.md"),
        vec!["docs/x.md".to_string(), "../f.md".to_string()]
    );
}

/// The fenced code blocks of a docs page in language `lang`.
fn code_blocks(page: &str, lang: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("docs").join(page)).expect("docs page");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let fence = line.trim_start();
        match &mut current {
            None if fence == format!("```{lang}") => current = Some(String::new()),
            Some(block) if fence == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn lua_session(main: &str) -> crate::lua::LuaBackend {
    let config = crate::lua::LuaConfig::default();
    let mut lua = crate::lua::LuaBackend::new(crate::ids::VendedId(1), &config, Default::default()).expect("state");
    lua.load_main(main).unwrap_or_else(|e| panic!("this docs example fails: {e:?}\n{main}"));
    lua
}

/// Every Lua example of the docs runs as a `main.lua`, and the guide's apps do what the guide says.
#[test]
fn lua_examples_in_the_docs_run() {
    let pages = ["getting-started.md", "lua-api.md", "viewdefs.md", "hybrid-mode.md"];
    let mut count = 0;
    for page in pages {
        for block in code_blocks(page, "lua") {
            lua_session(&block);
            count += 1;
        }
    }
    assert!(count >= 7, "the Lua examples are found ({count})");

    let guide = code_blocks("getting-started.md", "lua");
    let adder = lua_session(&guide[0]);
    let sum: f64 = adder.eval("local a = session:getApp(); a.a, a.b = '2', '3.5'; return a:compute()").unwrap();
    assert_eq!(sum, 5.5);
    let cleared: String = adder.eval("local a = session:getApp(); a:clear(); return a.a .. a.b").unwrap();
    assert_eq!(cleared, "");

    let tasks = lua_session(&guide[1]);
    let names: String = tasks
        .eval("local app = session:getApp(); app.newName = 'Call Bob'; app:addTask(); app:addTask(); return #app.tasks .. ':' .. app.tasks[1].name .. ':' .. app.newName")
        .unwrap();
    assert_eq!(names, "1:Call Bob:", "an added task, and a blank name is not added");
}

/// Every complete viewdef shown in the docs is one the gateway would load.
#[test]
fn viewdef_examples_in_the_docs_are_single_templates() {
    let mut count = 0;
    for page in ["getting-started.md", "viewdefs.md", "connected-mode.md", "attributes.md"] {
        for block in code_blocks(page, "html") {
            if block.trim_start().starts_with("<template") {
                assert!(crate::site::single_template(&block).is_some(), "{page}: not one <template>:\n{block}");
                count += 1;
            }
        }
    }
    assert!(count >= 3, "the viewdef examples are found ({count})");
}

/// Every `ui-…` name the built-in frontend reads or sets is in docs/attributes.md, except the few
/// that are internal to it.
#[test]
fn attributes_doc_covers_the_frontend() {
    const INTERNAL: [&str; 7] = [
        "ui-",
        "ui-gateway",
        "ui-new-view",
        "ui-gateway-style",
        "ui-status-connection",
        "ui-status-error",
        "ui-session",
    ];
    let doc = std::fs::read_to_string(root().join("docs/attributes.md")).expect("docs/attributes.md");
    let mut missing = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("src/web")).expect("src/web") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "js") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("js source");
        for (at, _) in source.match_indices("\"ui-") {
            let name: String = source[at + 1..].chars().take_while(|&c| c.is_ascii_lowercase() || c == '-').collect();
            let documented = doc.contains(&name);
            if !INTERNAL.contains(&name.as_str()) && !documented {
                missing.insert(format!("{name} ({})", path.file_name().unwrap_or_default().to_string_lossy()));
            }
        }
    }
    assert!(missing.is_empty(), "docs/attributes.md does not mention: {missing:?}");
}
