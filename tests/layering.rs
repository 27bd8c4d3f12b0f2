//! The layering of `src/` (ARCHITECTURE.md, "Layering"), checked from the source itself.
//!
//! Every top-level module has a layer; a module may name (`crate::…`) only modules of lower
//! layers. That rules out cycles between modules, and a new module or edge has to be placed
//! here, in the open, before it compiles into the knot. The pure cores (state machines that
//! take the clock as input) are checked for I/O and clock reads as well.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first. A module may use any module of a lower layer,
/// none of its own layer or above.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves: shared vocabulary, no imports of ours",
        &["ids", "settings", "limits", "calendar", "secret", "backoff", "metrics", "ratelimit", "auth"],
    ),
    ("protocol: RTMP without I/O, plus its tokio drivers", &["rtmp"]),
    ("media primitives: FLV, codecs, GOP cache, switcher", &["media"]),
    ("the channel profile; the database", &["channel", "store"]),
    ("the queue: pure engine and its actor", &["queue"]),
    ("live publishers, owned below who feeds and who reads them", &["hub"]),
    ("the program: director, slate, fan-out", &["program"]),
    ("consumers of the hub and the program: RTMP ingest and players, recordings, HLS", &["ingest", "recorder", "hls"]),
    ("set history (tracks, recordings of a set)", &["history"]),
    ("adapters to the outside", &["integrations", "sentry_report"]),
    ("HTTP; the seed import", &["web", "import"]),
    ("configuration, aggregating every owner's settings", &["config"]),
    ("wiring: start-up and shutdown", &["server"]),
    ("the command line", &["cli"]),
    ("fuzzing entry points (hidden, for fuzz/)", &["fuzzing"]),
];

/// Files that are pure state machines: no I/O, no tasks, no clock of their own.
const PURE: &[&str] = &[
    "queue/engine.rs",
    "program/director.rs",
    "media/switcher.rs",
    "media/gop.rs",
    "channel/airing.rs",
    "hls/mp4.rs",
    "hls/segmenter.rs",
    "hls/playlist.rs",
    "rtmp/handshake.rs",
    "rtmp/chunk.rs",
    "rtmp/amf0.rs",
    "rtmp/message.rs",
    "rtmp/server.rs",
    "rtmp/client.rs",
    "rtmp/url.rs",
];

/// What a pure file must not mention outside its tests.
const IMPURE: &[&str] =
    &["tokio", "std::fs", "std::net", "sqlx", "reqwest", "Instant::now", "SystemTime::now", "thread::sleep"];

#[test]
fn modules_use_only_lower_layers() {
    let violations = layering_violations(&read_sources());
    assert!(violations.is_empty(), "layering (see ARCHITECTURE.md):\n{}", violations.join("\n"));
}

#[test]
fn pure_cores_do_no_io() {
    let sources = read_sources();
    let mut violations = Vec::new();
    for pure in PURE {
        let Some((_, text)) = sources.iter().find(|(path, _)| path == pure) else {
            panic!("{pure} is listed as pure but does not exist");
        };
        violations.extend(impurities(pure, text));
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// The checker itself: it must see what it exists to catch.
#[test]
fn the_checker_catches_an_upward_edge_a_cycle_and_an_unplaced_module() {
    let clean = vec![
        ("rtmp/chunk.rs".to_owned(), "use bytes::Bytes;\n// crate::media in a comment is fine\n".to_owned()),
        ("media/flv.rs".to_owned(), "use crate::rtmp::MediaKind;\n".to_owned()),
    ];
    assert_eq!(layering_violations(&clean), Vec::<String>::new());

    let upward = vec![("rtmp/client_io.rs".to_owned(), "use crate::media::flv::FlvTag;\n".to_owned())];
    let found = layering_violations(&upward);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("rtmp/client_io.rs") && found[0].contains("media"), "{found:?}");

    // ingest and program naming each other: whichever way the layers go, one edge is refused.
    let cycle = vec![
        ("ingest/connection.rs".to_owned(), "use crate::program::Subscription;\n".to_owned()),
        ("program/mod.rs".to_owned(), "    let p: crate::ingest::Publishers;\n".to_owned()),
    ];
    assert_eq!(layering_violations(&cycle).len(), 1);

    let unplaced = vec![("newthing.rs".to_owned(), "use crate::ids::ConnId;\n".to_owned())];
    assert!(layering_violations(&unplaced)[0].contains("no layer"));

    let impure =
        "use std::time::Instant;\nfn f() { let _ = Instant::now(); }\n#[cfg(test)]\nmod tests {\n    use tokio;\n}\n";
    assert_eq!(impurities("queue/engine.rs", impure).len(), 1, "test code may do what it likes");
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module))
}

/// `src/`-relative path → top-level module (`ingest/connection.rs` → `ingest`).
fn top_module(path: &str) -> &str {
    let first = path.split('/').next().unwrap_or(path);
    first.strip_suffix(".rs").unwrap_or(first)
}

fn layering_violations(sources: &[(String, String)]) -> Vec<String> {
    let mut violations = BTreeSet::new();
    for (path, text) in sources {
        let from = top_module(path);
        if matches!(from, "lib" | "main") {
            continue;
        }
        let Some(from_layer) = layer_of(from) else {
            violations.insert(format!("{path}: module `{from}` has no layer in tests/layering.rs"));
            continue;
        };
        for (line_no, to) in crate_references(text) {
            if to == from {
                continue;
            }
            match layer_of(&to) {
                Some(to_layer) if to_layer < from_layer => {}
                Some(_) => {
                    violations.insert(format!(
                        "{path}:{line_no}: `{from}` ({}) may not use `{to}` ({})",
                        LAYERS[from_layer].0,
                        layer_of(&to).map_or("?", |l| LAYERS[l].0)
                    ));
                }
                None => {
                    violations.insert(format!("{path}:{line_no}: `{to}` has no layer in tests/layering.rs"));
                }
            }
        }
    }
    violations.into_iter().collect()
}

/// `(line, module)` for every `crate::module` in code (comments and doc links excluded).
fn crate_references(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = code_part(line);
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let preceded_by_ident =
                rest[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
            let after = &rest[at + "crate::".len()..];
            let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !preceded_by_ident && !name.is_empty() {
                found.push((i + 1, name));
            }
            rest = after;
        }
        // Climbing to the crate root through `super` would hide an edge from this check.
        if code.contains("super::super::super") {
            found.push((i + 1, "<super::super::super: use crate:: paths>".to_owned()));
        }
    }
    found
}

/// The line without its comment. `//` inside a string (a URL) has no space before it, so
/// only a comment that starts the line or follows whitespace is cut.
fn code_part(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") {
        return "";
    }
    match line.find(" //") {
        Some(at) => &line[..at],
        None => line,
    }
}

fn impurities(path: &str, text: &str) -> Vec<String> {
    let non_test = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut found = Vec::new();
    for (i, line) in non_test.lines().enumerate() {
        let code = code_part(line);
        for word in IMPURE {
            if code.contains(word) {
                found.push(format!("{path}:{}: a pure core uses `{word}`", i + 1));
            }
        }
    }
    found
}

/// Both crates' sources, by path under their `src/`: `motherstream-media` holds the lowest
/// layers (`ids`, `rtmp`, `media`) and `motherstream` re-exports them under the same names,
/// so one table covers both.
fn read_sources() -> Vec<(String, String)> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = Vec::new();
    for root in [manifest.join("crates/media/src"), manifest.join("src")] {
        let mut files = Vec::new();
        collect(&root, &mut files);
        assert!(files.len() > 10, "found only {} files under {}", files.len(), root.display());
        for file in files {
            let relative = file.strip_prefix(&root).expect("under src").to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            sources.push((relative, text));
        }
    }
    sources
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}
