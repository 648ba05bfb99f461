//! The crate's structure, checked from the text of `src/` alone: no build,
//! no external tools, so `cargo test structure` runs anywhere.
//!
//! - No import circles between files. Every rule should have one home, and
//!   "its home" only means something when the graph of which file uses
//!   which has no circles: files in a circle are one unit in all but name.
//! - No function over 80 lines. A reader needs functions short enough to
//!   hold in mind whole.
//!
//! Both checks read the source with comments blanked out (string and
//! character literals too, wherever braces are counted) and with
//! `#[cfg(test)] mod … { … }` blocks removed; blanking keeps every byte
//! offset and line number where it was.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

const MAX_FUNCTION_LINES: usize = 80;

/// File (`src/a/b.rs`) → the files it imports, each with one path that
/// makes the import (the evidence a failure message shows).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// Module path (`["a", "b"]`; the crate root is empty) → its file.
type ModuleFiles = BTreeMap<Vec<String>, String>;

static TEST_MODULE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{")
        .expect("test module pattern")
});
static INLINE_MODULE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bmod\s+(\w+)\s*\{").expect("inline module pattern"));
static USE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\buse\s+([^;]*);").expect("use pattern"));
static CRATE_PATH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$?\b(?:crate|self|super)(?:\s*::\s*\w+)+").expect("crate path pattern")
});
static FUNCTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bfn\s+(\w+)").expect("function pattern"));

#[test]
fn no_import_circles_between_files() {
    let graph = import_graph(&crate_sources());
    assert!(
        graph.values().any(|imports| !imports.is_empty()),
        "the detector found no imports at all: it is broken, not the crate"
    );
    let circles = circles(&graph);
    assert!(circles.is_empty(), "{}", describe_circles(&graph, &circles));
}

#[test]
fn no_function_over_80_lines() {
    let mut long = Vec::new();
    for source in crate_sources() {
        for function in functions(&source.bare) {
            if function.lines > MAX_FUNCTION_LINES {
                long.push(format!(
                    "{}:{} {} ({} lines)",
                    source.path, function.line, function.name, function.lines
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines, from `fn` to the closing brace:\n{}",
        long.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Reading and preparing the source.

/// One source file, prepared for the checks.
struct Source {
    /// Relative to the crate: `src/a/b.rs`.
    path: String,
    module: Vec<String>,
    /// Comments and test modules blanked; string literals kept, since a
    /// path in `#[serde(with = "crate::…")]` is a real use.
    code: String,
    /// As `code`, with string and character literals blanked too.
    bare: String,
}

impl Source {
    fn new(path: &str, text: &str) -> Source {
        let parts = classify(text);
        let code = blanked(text, &parts, &[Part::Comment]);
        let bare = blanked(text, &parts, &[Part::Comment, Part::Literal]);
        let tests = test_modules(&bare);
        Source {
            path: path.to_owned(),
            module: module_of(path),
            code: blank_ranges(&code, &tests),
            bare: blank_ranges(&bare, &tests),
        }
    }
}

fn crate_sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    collect_rust_files(&root.join("src"), &mut paths);
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            let relative = path.strip_prefix(root).expect("under the crate");
            Source::new(&relative.to_string_lossy().replace('\\', "/"), &text)
        })
        .collect()
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` → `a::b`; `src/a/mod.rs` → `a`; `src/lib.rs` and
/// `src/main.rs` → the crate root.
fn module_of(path: &str) -> Vec<String> {
    let inner = path.strip_prefix("src/").unwrap_or(path);
    let inner = inner.strip_suffix(".rs").unwrap_or(inner);
    let mut module: Vec<String> = inner.split('/').map(str::to_owned).collect();
    if module == ["lib"] || module == ["main"] || module.last().is_some_and(|m| m == "mod") {
        module.pop();
    }
    module
}

// ---------------------------------------------------------------------------
// Telling code from comments and literals.

/// What a byte of source is part of.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Code,
    Comment,
    Literal,
}

fn classify(text: &str) -> Vec<Part> {
    let mut parts = Vec::with_capacity(text.len());
    while parts.len() < text.len() {
        let (part, end) = token_at(text, parts.len());
        parts.resize(end, part);
    }
    parts
}

/// The part that starts at byte `at`, and the byte where it ends.
fn token_at(text: &str, at: usize) -> (Part, usize) {
    let rest = &text[at..];
    let (part, len) = if rest.starts_with("//") {
        (Part::Comment, rest.find('\n').unwrap_or(rest.len()))
    } else if rest.starts_with("/*") {
        (Part::Comment, block_comment_len(rest))
    } else if rest.starts_with('"') {
        (Part::Literal, string_len(rest))
    } else if rest.starts_with('\'') {
        char_literal_len(rest).map_or((Part::Code, 1), |len| (Part::Literal, len))
    } else if let Some(len) = identifier_len(rest) {
        match raw_string_len(&rest[..len], &rest[len..]) {
            Some(raw) => (Part::Literal, len + raw),
            None => (Part::Code, len),
        }
    } else {
        (Part::Code, rest.chars().next().map_or(1, char::len_utf8))
    };
    (part, at + len)
}

fn block_comment_len(rest: &str) -> usize {
    let bytes = rest.as_bytes();
    let (mut depth, mut i) = (0, 0);
    while i < bytes.len() {
        if bytes[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if bytes[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// `rest` starts with `"`.
fn string_len(rest: &str) -> usize {
    let bytes = rest.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// `rest` starts with `'`: a character literal, or `None` for a lifetime.
fn char_literal_len(rest: &str) -> Option<usize> {
    match rest[1..].chars().next()? {
        // Every escape starts with an ASCII character after the backslash.
        '\\' => rest.get(3..)?.find('\'').map(|i| i + 4),
        c => rest[1 + c.len_utf8()..]
            .starts_with('\'')
            .then_some(2 + c.len_utf8()),
    }
}

fn identifier_len(rest: &str) -> Option<usize> {
    let first = rest.chars().next()?;
    if !(first.is_alphabetic() || first == '_') {
        return None;
    }
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'));
    Some(end.unwrap_or(rest.len()))
}

/// After the prefix `r`, `br` or `cr`: the length of `#…#"…"#…#`.
fn raw_string_len(prefix: &str, after: &str) -> Option<usize> {
    if !matches!(prefix, "r" | "br" | "cr") {
        return None;
    }
    let hashes = after.len() - after.trim_start_matches('#').len();
    let body = after[hashes..].strip_prefix('"')?;
    let closing = format!("\"{}", "#".repeat(hashes));
    let end = body
        .find(&closing)
        .map_or(body.len(), |i| i + closing.len());
    Some(hashes + 1 + end)
}

/// `text` with every byte of the `blank` parts turned into a space
/// (newlines kept).
fn blanked(text: &str, parts: &[Part], blank: &[Part]) -> String {
    let bytes = text.bytes().zip(parts);
    let bytes = bytes.map(|(byte, part)| {
        if byte != b'\n' && blank.contains(part) {
            b' '
        } else {
            byte
        }
    });
    String::from_utf8(bytes.collect()).expect("whole characters blanked")
}

fn blank_ranges(text: &str, ranges: &[Range<usize>]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for range in ranges {
        for byte in &mut bytes[range.clone()] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
    }
    String::from_utf8(bytes).expect("ranges start and end at ASCII characters")
}

/// The byte of the `}` that closes the `{` at `open` (in blanked text).
fn matching_brace(bare: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, byte) in bare.bytes().enumerate().skip(open) {
        match byte {
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `#[cfg(test)] mod NAME { … }`, attribute to closing brace.
fn test_modules(bare: &str) -> Vec<Range<usize>> {
    let blocks = TEST_MODULE.find_iter(bare).filter_map(|found| {
        let close = matching_brace(bare, found.end() - 1)?;
        Some(found.start()..close + 1)
    });
    blocks.collect()
}

fn line_at(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

// ---------------------------------------------------------------------------
// The import graph.

fn import_graph(sources: &[Source]) -> Graph {
    let mut files = ModuleFiles::new();
    for source in sources {
        // `src/lib.rs` sorts before `src/main.rs`: the library's root wins.
        let file = source.path.clone();
        files.entry(source.module.clone()).or_insert(file);
    }
    let graph = sources
        .iter()
        .map(|s| (s.path.clone(), imports_of(s, &files)));
    graph.collect()
}

fn imports_of(source: &Source, files: &ModuleFiles) -> BTreeMap<String, String> {
    let inline = inline_modules(&source.bare);
    let mut imports = BTreeMap::new();
    for (at, path) in crate_paths(source) {
        let segments = segments(&path);
        let here = module_at(source, &inline, at);
        let Some(target) = absolute(&segments, &here).and_then(|p| owner(&p, files)) else {
            continue;
        };
        if target != source.module {
            let file = files[&target].clone();
            imports.entry(file).or_insert_with(|| segments.join("::"));
        }
    }
    imports
}

/// Every path starting at `crate`, `self` or `super`, with its byte:
/// `use` trees expanded, then every other mention in code.
fn crate_paths(source: &Source) -> Vec<(usize, String)> {
    let mut paths = Vec::new();
    let mut uses = Vec::new();
    for found in USE.captures_iter(&source.bare) {
        let whole = found.get(0).expect("the whole match").range();
        let at = whole.start;
        uses.push(whole);
        let expanded = expand_use_tree(&found[1]).into_iter();
        paths.extend(expanded.map(|path| (at, path)));
    }
    let rest = blank_ranges(&source.code, &uses);
    let mentions = CRATE_PATH.find_iter(&rest);
    paths.extend(mentions.map(|found| (found.start(), found.as_str().to_owned())));
    paths
}

/// `a::{b, c::{d}}` → `a::b`, `a::c::d`.
fn expand_use_tree(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let (Some(open), Some(close)) = (tree.find('{'), tree.rfind('}')) else {
        return vec![tree.to_owned()];
    };
    let prefix = &tree[..open];
    let branches = split_top_level(&tree[open + 1..close]);
    let branches = branches.into_iter().filter(|b| !b.trim().is_empty());
    let paths = branches.flat_map(expand_use_tree);
    paths.map(|path| format!("{prefix}{path}")).collect()
}

/// Split at the commas outside braces.
fn split_top_level(list: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in list.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts
}

/// `crate :: a::B as C` → `crate`, `a`, `B`; a trailing `*` or `self`
/// (from `{self, …}`) names the module before it.
fn segments(path: &str) -> Vec<&str> {
    let words = path
        .split("::")
        .map(|s| s.split_whitespace().next().unwrap_or(""));
    let mut segments: Vec<&str> = words.filter(|s| !s.is_empty()).collect();
    if segments.len() > 1 && matches!(segments.last(), Some(&("*" | "self"))) {
        segments.pop();
    }
    segments
}

/// `mod NAME { … }` blocks written inside a file: their bodies and names.
fn inline_modules(bare: &str) -> Vec<(Range<usize>, String)> {
    let blocks = INLINE_MODULE.captures_iter(bare).filter_map(|found| {
        let open = found.get(0)?.end() - 1;
        let close = matching_brace(bare, open)?;
        Some((open..close, found[1].to_owned()))
    });
    blocks.collect()
}

/// The module that byte `at` of the file is in (`self` there).
fn module_at(source: &Source, inline: &[(Range<usize>, String)], at: usize) -> Vec<String> {
    let mut module = source.module.clone();
    let enclosing = inline.iter().filter(|(body, _)| body.contains(&at));
    module.extend(enclosing.map(|(_, name)| name.clone()));
    module
}

/// The path from the crate root, `here` being the module `self` names;
/// `None` for paths that do not start at `crate`, `self` or `super`.
fn absolute(segments: &[&str], here: &[String]) -> Option<Vec<String>> {
    let (first, rest) = segments.split_first()?;
    let mut path = match *first {
        "crate" | "$crate" => Vec::new(),
        "self" | "super" => here.to_vec(),
        _ => return None,
    };
    let supers = rest.iter().take_while(|s| **s == "super").count();
    for _ in 0..supers + usize::from(*first == "super") {
        path.pop()?;
    }
    path.extend(rest[supers..].iter().map(|s| (*s).to_owned()));
    Some(path)
}

/// The longest prefix of `path` that is a module with a file.
fn owner(path: &[String], files: &ModuleFiles) -> Option<Vec<String>> {
    let mut prefixes = (0..=path.len()).rev().map(|len| &path[..len]);
    prefixes
        .find(|p| files.contains_key(*p))
        .map(<[String]>::to_vec)
}

// ---------------------------------------------------------------------------
// Circles.

/// The strongly connected groups of more than one file: each file in a
/// group reaches every other one.
fn circles(graph: &Graph) -> Vec<BTreeSet<String>> {
    let reach: BTreeMap<&String, BTreeSet<String>> = graph
        .keys()
        .map(|file| (file, reachable(graph, file)))
        .collect();
    let reaches = |from: &String, to: &String| reach.get(from).is_some_and(|r| r.contains(to));
    let groups = graph.keys().map(|file| {
        let both_ways = reach[file].iter().filter(|other| reaches(other, file));
        both_ways.cloned().collect::<BTreeSet<String>>()
    });
    let distinct: BTreeSet<BTreeSet<String>> = groups.filter(|group| group.len() > 1).collect();
    distinct.into_iter().collect()
}

fn reachable(graph: &Graph, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(file) = stack.pop() {
        for next in graph.get(&file).into_iter().flat_map(BTreeMap::keys) {
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    seen
}

fn describe_circles(graph: &Graph, circles: &[BTreeSet<String>]) -> String {
    let mut out = format!(
        "{} import circle(s) between files under src/ (each file imports the \
         others of its circle, directly or through them):\n",
        circles.len()
    );
    for circle in circles {
        out.push_str("\ncircle:\n");
        for file in circle {
            writeln!(out, "  {file}").expect("writing to a string");
        }
        out.push_str("its edges (file -> file, with one path that makes the import):\n");
        for file in circle {
            let inside = graph[file].iter().filter(|(to, _)| circle.contains(*to));
            for (to, via) in inside {
                writeln!(out, "  {file} -> {to}  ({via})").expect("writing to a string");
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Function lengths.

struct Function {
    name: String,
    /// The line of `fn`.
    line: usize,
    /// From the line of `fn` to the line of the closing brace, inclusive.
    lines: usize,
}

/// Every `fn` with a body, in blanked text.
fn functions(bare: &str) -> Vec<Function> {
    let found = FUNCTION.captures_iter(bare).filter_map(|found| {
        let whole = found.get(0)?;
        let close = matching_brace(bare, body_open(bare, whole.end())?)?;
        let line = line_at(bare, whole.start());
        let lines = line_at(bare, close) - line + 1;
        Some(Function {
            name: found[1].to_owned(),
            line,
            lines,
        })
    });
    found.collect()
}

/// The `{` that opens the body, or `None` when a `;` ends the declaration
/// first (ignoring those inside `(…)` and `[…]`, as in `[u8; 4]`).
fn body_open(bare: &str, from: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, byte) in bare.bytes().enumerate().skip(from) {
        match byte {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth -= 1,
            b'{' if depth == 0 => return Some(i),
            b';' if depth == 0 => return None,
            _ => {}
        }
    }
    None
}

// ---------------------------------------------------------------------------
// The detectors themselves, on files made up for the purpose.

fn sources(files: &[(&str, &str)]) -> Vec<Source> {
    files
        .iter()
        .map(|(path, text)| Source::new(path, text))
        .collect()
}

fn edges(graph: &Graph) -> BTreeSet<(String, String)> {
    let pairs = graph
        .iter()
        .flat_map(|(from, imports)| imports.keys().map(move |to| (from.clone(), to.clone())));
    pairs.collect()
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn detector_finds_a_circle() {
    let graph = import_graph(&sources(&[
        ("src/lib.rs", "pub mod a;\npub mod b;\n"),
        ("src/a.rs", "use crate::b::X;\npub struct Y;\n"),
        ("src/b.rs", "use crate::a::Y;\npub struct X;\n"),
    ]));
    let expected: BTreeSet<String> = ["src/a.rs", "src/b.rs"].map(str::to_owned).into();
    assert_eq!(circles(&graph), vec![expected]);
    let message = describe_circles(&graph, &circles(&graph));
    assert!(
        message.contains("  src/a.rs -> src/b.rs  (crate::b::X)"),
        "{message}"
    );
}

#[test]
fn detector_passes_imports_without_circles() {
    let graph = import_graph(&sources(&[
        ("src/lib.rs", "pub mod a;\npub mod b;\n"),
        ("src/a.rs", "use crate::b::X;\npub struct Y;\n"),
        (
            "src/b.rs",
            "//! Not `crate::a::Y`.\n\
             /// Nor crate::a::Y.\n\
             pub struct X; // crate::a::Y\n\
             /* crate::a::Y */\n\
             #[cfg(test)]\n\
             mod tests {\n    use crate::a::Y;\n    fn f() { let _ = \"}\"; }\n}\n",
        ),
    ]));
    assert!(circles(&graph).is_empty());
    assert_eq!(edges(&graph), pairs(&[("src/a.rs", "src/b.rs")]));
}

#[test]
fn detector_resolves_self_super_and_use_trees() {
    let graph = import_graph(&sources(&[
        ("src/lib.rs", ""),
        ("src/c.rs", ""),
        (
            "src/x/mod.rs",
            "use self::p::{Q, r::{S as T}};\nfn f() { super::c::g(); }\n",
        ),
        (
            "src/x/p.rs",
            "use super::Z;\npub mod inner {\n    pub fn h() { super::helper() }\n}\n",
        ),
        (
            "src/x/p/r.rs",
            "use super::super::{self, Z};\nfn f() { crate::c::g(); crate::nothing(); }\n",
        ),
    ]));
    let expected = pairs(&[
        ("src/x/mod.rs", "src/x/p.rs"),
        ("src/x/mod.rs", "src/x/p/r.rs"),
        ("src/x/mod.rs", "src/c.rs"),
        ("src/x/p.rs", "src/x/mod.rs"),
        ("src/x/p/r.rs", "src/x/mod.rs"),
        ("src/x/p/r.rs", "src/c.rs"),
        ("src/x/p/r.rs", "src/lib.rs"),
    ]);
    assert_eq!(edges(&graph), expected);
}

#[test]
fn function_lengths_run_from_fn_to_closing_brace() {
    let source = Source::new(
        "src/f.rs",
        "fn short() {\n\
         \x20   let s = \"}\"; let c = '}'; // }\n\
         }\n\
         trait T { fn declared(&self, x: [u8; 4]); }\n\
         pub(crate) async fn three<'a>(x: &'a str) -> u8 {\n\
         \x20   1\n\
         }\n\
         #[cfg(test)]\n\
         mod tests { fn hidden() {} }\n",
    );
    let found: Vec<(String, usize, usize)> = functions(&source.bare)
        .into_iter()
        .map(|f| (f.name, f.line, f.lines))
        .collect();
    assert_eq!(
        found,
        vec![("short".to_owned(), 1, 3), ("three".to_owned(), 5, 3)]
    );
}
