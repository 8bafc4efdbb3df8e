//! The modules import one way: the top may use anything; an area (wasi,
//! sock, poll, logging) only the shared pieces at the bottom, except its `link.rs`,
//! which defines the area's imports and so also knows the host state and
//! its output (`host`, `output`); a bottom piece only other bottom pieces.

const TOP: [&str; 9] = [
    "lib",
    "main",
    "runtime",
    "compile_cache",
    "instances",
    "output",
    "linker",
    "host",
    "layering",
];
const AREAS: [&str; 4] = ["wasi", "sock", "poll", "logging"];
const BOTTOM: [&str; 4] = ["memory", "errno", "fd_table", "clock"];
/// What an area's `link.rs` may use besides the bottom.
const LINK: [&str; 2] = ["host", "output"];

fn module_of(path: &std::path::Path, src: &std::path::Path) -> String {
    let rel = path.strip_prefix(src).expect("below src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_one_way_from_the_linker_down() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut checked = 0;
    for file in files {
        let module = module_of(&file, &src);
        let text = std::fs::read_to_string(&file).expect("readable source");
        let allowed: &[&str] = if TOP.contains(&module.as_str()) {
            continue;
        } else if AREAS.contains(&module.as_str()) {
            &BOTTOM
        } else {
            assert!(BOTTOM.contains(&module.as_str()), "{module} is in no layer");
            &BOTTOM
        };
        let is_link = file.file_name().is_some_and(|n| n == "link.rs");
        for (at, _) in text.match_indices("crate::") {
            let used: String = text[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if used.is_empty() || used == module {
                continue;
            }
            if is_link && AREAS.contains(&module.as_str()) && LINK.contains(&used.as_str()) {
                continue;
            }
            assert!(
                allowed.contains(&used.as_str()),
                "{} ({module}) uses crate::{used}, against the layering",
                file.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "only {checked} imports seen: is the scan broken?"
    );
}
